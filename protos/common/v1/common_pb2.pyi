from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Money(_message.Message):
    __slots__ = ("currency_code", "amount_micros")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MICROS_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    amount_micros: int
    def __init__(self, currency_code: _Optional[str] = ..., amount_micros: _Optional[int] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("code", "detail")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    code: str
    detail: str
    def __init__(self, code: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ServingInfo(_message.Message):
    __slots__ = ("model_name", "model_version", "degraded", "fallback", "notes", "latency_ms")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    degraded: bool
    fallback: str
    notes: _containers.RepeatedScalarFieldContainer[str]
    latency_ms: float
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., degraded: _Optional[bool] = ..., fallback: _Optional[str] = ..., notes: _Optional[_Iterable[str]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class RequestContext(_message.Message):
    __slots__ = ("request_id", "session_id", "device", "locale")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    device: str
    locale: str
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., device: _Optional[str] = ..., locale: _Optional[str] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("product_id", "title", "description", "category", "brand", "price", "in_stock")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    IN_STOCK_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    title: str
    description: str
    category: str
    brand: str
    price: Money
    in_stock: bool
    def __init__(self, product_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., brand: _Optional[str] = ..., price: _Optional[_Union[Money, _Mapping]] = ..., in_stock: _Optional[bool] = ...) -> None: ...
