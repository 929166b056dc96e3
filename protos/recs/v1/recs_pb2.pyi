from protos.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProductFilter(_message.Message):
    __slots__ = ("categories", "exclude_product_ids", "include_purchased", "include_out_of_stock")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PURCHASED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OUT_OF_STOCK_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    exclude_product_ids: _containers.RepeatedScalarFieldContainer[str]
    include_purchased: bool
    include_out_of_stock: bool
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., exclude_product_ids: _Optional[_Iterable[str]] = ..., include_purchased: _Optional[bool] = ..., include_out_of_stock: _Optional[bool] = ...) -> None: ...

class ScoredProduct(_message.Message):
    __slots__ = ("product", "score", "source", "reasons")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    product: _common_pb2.Product
    score: float
    source: str
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Reason]
    def __init__(self, product: _Optional[_Union[_common_pb2.Product, _Mapping]] = ..., score: _Optional[float] = ..., source: _Optional[str] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "k", "filter", "context", "max_per_category")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    filter: ProductFilter
    context: _common_pb2.RequestContext
    max_per_category: int
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[ProductFilter, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., max_per_category: _Optional[int] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "serving")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredProduct]
    serving: _common_pb2.ServingInfo
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredProduct, _Mapping]]] = ..., serving: _Optional[_Union[_common_pb2.ServingInfo, _Mapping]] = ...) -> None: ...

class SimilarProductsRequest(_message.Message):
    __slots__ = ("product_id", "k", "user_id", "filter")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    k: int
    user_id: str
    filter: ProductFilter
    def __init__(self, product_id: _Optional[str] = ..., k: _Optional[int] = ..., user_id: _Optional[str] = ..., filter: _Optional[_Union[ProductFilter, _Mapping]] = ...) -> None: ...

class SimilarProductsResponse(_message.Message):
    __slots__ = ("items", "serving")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredProduct]
    serving: _common_pb2.ServingInfo
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredProduct, _Mapping]]] = ..., serving: _Optional[_Union[_common_pb2.ServingInfo, _Mapping]] = ...) -> None: ...

class SearchProductsRequest(_message.Message):
    __slots__ = ("query", "k", "user_id", "filter", "context", "page_token")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    user_id: str
    filter: ProductFilter
    context: _common_pb2.RequestContext
    page_token: str
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., user_id: _Optional[str] = ..., filter: _Optional[_Union[ProductFilter, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchProductsResponse(_message.Message):
    __slots__ = ("items", "total_matches", "serving", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MATCHES_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredProduct]
    total_matches: int
    serving: _common_pb2.ServingInfo
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredProduct, _Mapping]]] = ..., total_matches: _Optional[int] = ..., serving: _Optional[_Union[_common_pb2.ServingInfo, _Mapping]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
