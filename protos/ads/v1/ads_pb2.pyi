from protos.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AdContext(_message.Message):
    __slots__ = ("page_category", "query", "product_id", "request")
    PAGE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    page_category: str
    query: str
    product_id: str
    request: _common_pb2.RequestContext
    def __init__(self, page_category: _Optional[str] = ..., query: _Optional[str] = ..., product_id: _Optional[str] = ..., request: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ...) -> None: ...

class RankAdsRequest(_message.Message):
    __slots__ = ("user_id", "placement_id", "max_ads", "context", "candidate_ad_ids", "reserve_price")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ADS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_AD_IDS_FIELD_NUMBER: _ClassVar[int]
    RESERVE_PRICE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    placement_id: str
    max_ads: int
    context: AdContext
    candidate_ad_ids: _containers.RepeatedScalarFieldContainer[str]
    reserve_price: _common_pb2.Money
    def __init__(self, user_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., max_ads: _Optional[int] = ..., context: _Optional[_Union[AdContext, _Mapping]] = ..., candidate_ad_ids: _Optional[_Iterable[str]] = ..., reserve_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class RankedAd(_message.Message):
    __slots__ = ("ad_id", "campaign_id", "position", "title", "body", "product_id", "pctr", "bid", "ecpm_micros", "price", "impression_id", "reasons")
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    PCTR_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ECPM_MICROS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ad_id: str
    campaign_id: str
    position: int
    title: str
    body: str
    product_id: str
    pctr: float
    bid: _common_pb2.Money
    ecpm_micros: int
    price: _common_pb2.Money
    impression_id: str
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Reason]
    def __init__(self, ad_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., position: _Optional[int] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., product_id: _Optional[str] = ..., pctr: _Optional[float] = ..., bid: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., ecpm_micros: _Optional[int] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., impression_id: _Optional[str] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ...) -> None: ...

class RankAdsResponse(_message.Message):
    __slots__ = ("ads", "candidates_considered", "filtered", "serving")
    class FilteredEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ADS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    FILTERED_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    ads: _containers.RepeatedCompositeFieldContainer[RankedAd]
    candidates_considered: int
    filtered: _containers.ScalarMap[str, int]
    serving: _common_pb2.ServingInfo
    def __init__(self, ads: _Optional[_Iterable[_Union[RankedAd, _Mapping]]] = ..., candidates_considered: _Optional[int] = ..., filtered: _Optional[_Mapping[str, int]] = ..., serving: _Optional[_Union[_common_pb2.ServingInfo, _Mapping]] = ...) -> None: ...

class PredictCtrRequest(_message.Message):
    __slots__ = ("user_id", "placement_id", "ad_ids", "context", "position")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AD_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    placement_id: str
    ad_ids: _containers.RepeatedScalarFieldContainer[str]
    context: AdContext
    position: int
    def __init__(self, user_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., ad_ids: _Optional[_Iterable[str]] = ..., context: _Optional[_Union[AdContext, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...

class AdPrediction(_message.Message):
    __slots__ = ("ad_id", "pctr")
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    PCTR_FIELD_NUMBER: _ClassVar[int]
    ad_id: str
    pctr: float
    def __init__(self, ad_id: _Optional[str] = ..., pctr: _Optional[float] = ...) -> None: ...

class PredictCtrResponse(_message.Message):
    __slots__ = ("predictions", "serving")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[AdPrediction]
    serving: _common_pb2.ServingInfo
    def __init__(self, predictions: _Optional[_Iterable[_Union[AdPrediction, _Mapping]]] = ..., serving: _Optional[_Union[_common_pb2.ServingInfo, _Mapping]] = ...) -> None: ...
