"""Conversions between domain values and the shared proto types (common.v1)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from protos.common.v1 import common_pb2
from services.serving import ServingReport

CURRENCY = "USD"


def money(amount_micros: int, currency: str = CURRENCY) -> common_pb2.Money:
    return common_pb2.Money(currency_code=currency or CURRENCY, amount_micros=int(amount_micros))


def money_micros(field: str, value: common_pb2.Money) -> int:
    from shared.core.errors import InvalidArgument

    if value.amount_micros < 0:
        raise InvalidArgument(f"{field}.amount_micros", f"must not be negative, got {value.amount_micros}")
    return int(value.amount_micros)


def serving(report: ServingReport) -> common_pb2.ServingInfo:
    return common_pb2.ServingInfo(
        model_name=report.model_name,
        model_version=report.model_version,
        degraded=report.degraded,
        fallback=report.fallback,
        notes=report.notes,
        latency_ms=round(report.latency_ms, 3),
    )


def reasons(pairs) -> list[common_pb2.Reason]:
    return [common_pb2.Reason(code=code, detail=detail) for code, detail in pairs]


def timestamp(value: datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def product(p) -> common_pb2.Product:
    return common_pb2.Product(
        product_id=p.product_id,
        title=p.title,
        description=p.description or "",
        category=p.category or "",
        brand=p.brand or "",
        price=money(p.price_micros, getattr(p, "currency", CURRENCY)),
        in_stock=bool(p.in_stock),
    )
