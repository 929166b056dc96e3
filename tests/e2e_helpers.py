"""Small lookups end-to-end tests use to pick real ids from the seeded shop, and error assertions."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import Engine, text


def one(engine: Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def active_user(engine: Engine) -> str:
    """A user with orders and product views: exercises every source and tool."""
    return one(
        engine,
        """
        select o.user_id from orders o join events e on e.user_id = o.user_id and e.type = 'view'
        group by o.user_id order by count(*) desc, o.user_id limit 1
    """,
    )


def any_product(engine: Engine) -> str:
    return one(engine, "select product_id from products where in_stock order by product_id limit 1")


def assert_rpc_error(call, code: grpc.StatusCode, field: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == code, info.value.details()
    assert info.value.details().startswith(field), info.value.details()
    return info.value
