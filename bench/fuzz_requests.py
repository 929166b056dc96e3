"""Generated requests for fuzzing the services, shared by tests/services/test_fuzz.py (a few hundred per service)
and ``ecomai bench fuzz`` (bench/fuzz.py, >= 10,000 per service).

Requests are derived from each method's message descriptor, so every field of every RPC is covered and a new field
is fuzzed without a change here: strings from the shop's real ids, empty, huge, odd Unicode and injection-like text;
numbers at their type's boundaries; enums with unknown values; repeated fields empty, short or far over any limit;
nested messages (timestamps included) the same way. Each message is then sent as bytes, either as serialized or
mutated: truncated, a byte flipped, invalid UTF-8 in a string field, garbage appended, or random bytes.

What a call may answer: any status but UNKNOWN and INTERNAL (a crash or an unmapped error) and
DEADLINE_EXCEEDED (the service hung past the call's deadline)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from protos.ads.v1 import ads_pb2
from protos.chat.v1 import chat_pb2
from protos.events.v1 import events_pb2
from protos.recs.v1 import recs_pb2

BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
SERVICES = {  # service -> the proto services it serves (each also ingests events)
    "ads": [ads_pb2.DESCRIPTOR.services_by_name["AdService"]],
    "recs": [recs_pb2.DESCRIPTOR.services_by_name["RecommendationService"]],
    "chat": [chat_pb2.DESCRIPTOR.services_by_name["ChatService"]],
}
EVENTS = events_pb2.DESCRIPTOR.services_by_name["EventService"]
MAX_DEPTH = 3
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
ODD_TEXT = ["", " ", "\x00", "' or 1=1 --", "%s%n", "../../etc/passwd", "🙂" * 20, "é" * 300, "\u202e", "NaN"]


@dataclass(frozen=True)
class Method:
    path: str  # /package.Service/Name
    input: Descriptor
    output: Descriptor
    streaming: bool


def methods_of(service: str) -> list[Method]:
    return [
        Method(f"/{svc.full_name}/{m.name}", m.input_type, m.output_type, m.server_streaming)
        for svc in [*SERVICES[service], EVENTS]
        for m in svc.methods
    ]


def _scalar(fd: FieldDescriptor, ids: list[str], small: bool = False) -> st.SearchStrategy:
    if fd.type == FieldDescriptor.TYPE_STRING:
        short = [st.sampled_from(ids or ["x"]), st.sampled_from(ODD_TEXT), st.text(max_size=40)]
        return st.one_of(*short) if small else st.one_of(*short, st.integers(500, 200_000).map(lambda n: "x" * n))
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(
            allow_nan=True, allow_infinity=True, width=64 if fd.type == FieldDescriptor.TYPE_DOUBLE else 32
        )
    if fd.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 1000))
    low, high = _INT_RANGES[fd.type]
    edges = sorted({0, 1, -1 if low < 0 else 2, 2, 5, 20, 100, 1000, 10**6, low, high, low + 1, high - 1})
    return st.one_of(st.sampled_from([e for e in edges if low <= e <= high]), st.integers(low, high))


def _value(fd: FieldDescriptor, ids: list[str], depth: int, small: bool) -> st.SearchStrategy:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(fd.message_type, ids, depth + 1, small)
    return _scalar(fd, ids, small)


def messages(descriptor: Descriptor, ids: list[str], depth: int = 0, small: bool = False) -> st.SearchStrategy:
    """Messages of ``descriptor`` with any subset of fields set to generated values. ``small``: no huge strings or
    lists (the items of a huge list, so a request stays well under the 8 MiB message limit)."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth > MAX_DEPTH:
        return st.just(cls())
    parts = {}
    for fd in descriptor.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key = _scalar(fd.message_type.fields_by_name["key"], ids, small)
            val = _value(fd.message_type.fields_by_name["value"], ids, depth, small)
            parts[fd.name] = st.one_of(st.none(), st.dictionaries(key, val, max_size=4))
        elif fd.label == FieldDescriptor.LABEL_REPEATED:
            item = _value(fd, ids, depth, small)
            lists = [st.none(), st.lists(item, max_size=6)]
            if not small:
                tiny_item = _value(fd, ids, depth, small=True)
                lists.append(st.tuples(tiny_item, st.integers(200, 3000)).map(lambda pair: [pair[0]] * pair[1]))
            parts[fd.name] = st.one_of(*lists)
        else:
            parts[fd.name] = st.one_of(st.none(), _value(fd, ids, depth, small))
    return st.fixed_dictionaries(parts).map(lambda values: _build(cls, values))


def _build(cls, values: dict):
    msg = cls()
    for name, value in values.items():
        if value is None:
            continue
        target = getattr(msg, name)
        try:
            if isinstance(value, dict):
                for k, v in value.items():
                    if hasattr(target[k], "CopyFrom"):
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif isinstance(value, list):
                target.extend(value)
            elif hasattr(target, "CopyFrom"):
                target.CopyFrom(value)
            else:
                setattr(msg, name, value)
        except (ValueError, TypeError):
            continue  # a value this field's type cannot hold (e.g. a closed enum): leave the field unset
    return msg


def _with_fields_of(base, generated, names: list[str]):
    """A copy of ``base`` whose fields ``names`` hold ``generated``'s values (set or unset) instead."""
    out = type(base)()
    out.CopyFrom(base)
    part = type(generated)()
    part.CopyFrom(generated)
    for fd in part.DESCRIPTOR.fields:
        if fd.name not in names:
            part.ClearField(fd.name)
    for name in names:
        out.ClearField(name)
    out.MergeFrom(part)
    return out


@st.composite
def request_bytes(draw, method: Method, ids: list[str], base=None) -> tuple[str, bytes]:
    """(how the bytes were made, the bytes) of one request to ``method``. With ``base`` (a valid request), half the
    requests are that request with one or two fields replaced by generated values: they get past the other fields'
    checks and reach the domain code."""
    msg = draw(messages(method.input, ids))
    if base is not None and draw(st.booleans()):
        names = draw(st.lists(st.sampled_from([f.name for f in method.input.fields]), max_size=2, unique=True))
        msg = _with_fields_of(base, msg, names)
    data = msg.SerializeToString()
    kind = draw(st.sampled_from(["valid", "valid", "valid", "truncate", "flip", "invalid_utf8", "garbage", "random"]))
    if kind == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    elif kind == "invalid_utf8":
        strings = [f for f in method.input.fields if f.type == FieldDescriptor.TYPE_STRING]
        if strings:
            fd = draw(st.sampled_from(strings))
            marked = message_factory.GetMessageClass(method.input)()
            marked.CopyFrom(msg)
            if fd.label == FieldDescriptor.LABEL_REPEATED:
                getattr(marked, fd.name).append("\x01MARK\x01")
            else:
                setattr(marked, fd.name, "\x01MARK\x01")
            data = marked.SerializeToString().replace(b"\x01MARK\x01", b"\xff\xfeMA\xc3\x28\x80")
    elif kind == "garbage":
        data += draw(st.binary(min_size=1, max_size=32))
    elif kind == "random":
        data = draw(st.binary(max_size=256))
    return kind, data


@dataclass
class FuzzReport:
    """What one service answered: calls by status code, latency, and the calls that broke the rules."""

    codes: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(self.codes.values())


def call_raw(channel: grpc.Channel, method: Method, data: bytes, metadata, timeout_s: float) -> tuple[str, str]:
    """(status name, details) of one call with raw request bytes; a streaming reply is read to its end."""
    try:
        if method.streaming:
            for _ in channel.unary_stream(method.path)(data, timeout=timeout_s, metadata=metadata):
                pass
        else:
            channel.unary_unary(method.path)(data, timeout=timeout_s, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""
    return "OK", ""


def record(report: FuzzReport, method: Method, kind: str, data: bytes, call) -> None:
    started = time.perf_counter()
    code, details = call()
    report.latencies_ms.append((time.perf_counter() - started) * 1000)
    report.codes[code] += 1
    report.kinds[kind] += 1
    if grpc.StatusCode[code] in BAD_CODES and len(report.failures) < 50:
        report.failures.append(
            {"method": method.path, "kind": kind, "code": code, "details": details[:300], "bytes": data[:200].hex()}
        )


_ID_QUERIES = [
    "select user_id from users order by user_id limit :n",
    "select product_id from products order by product_id limit :n",
    "select ad_id from ads order by ad_id limit :n",
    "select campaign_id from campaigns order by campaign_id limit :n",
    "select distinct category from products where category is not null limit :n",
    "select order_id from orders order by order_id limit :n",
    "select conversation_id from conversations order by conversation_id limit :n",
]


def shop_ids(engine, per_kind: int = 10) -> list[str]:
    """Real ids of the shop (users, products, ads, campaigns, categories, orders, conversations) and the demo
    placements, so generated requests also reach past the not-found checks; plus ids that look real but are not."""
    from sqlalchemy import text

    ids = ["home_top", "product_page", "search_results", "u-does-not-exist", "p-00000000", "ad-missing"]
    with engine.connect() as conn:
        for query in _ID_QUERIES:
            ids.extend(str(v) for v in conn.execute(text(query), {"n": per_kind}).scalars())
    return ids


def fuzz_service(
    channel: grpc.Channel,
    service: str,
    ids: list[str],
    examples: int,
    metadata=None,
    timeout_s: float = 5.0,
    seed: int = 0,
    bases: dict | None = None,
) -> FuzzReport:
    """Sends ``examples`` generated requests (spread over the service's methods, RecordEvents included) one at a
    time and returns what came back. Nothing is raised on a bad answer: the report lists it."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    methods = methods_of(service)
    report = FuzzReport()

    @with_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one(data) -> None:
        method = data.draw(st.sampled_from(methods), label="method")
        kind, raw = data.draw(request_bytes(method, ids, (bases or {}).get(method.path)), label="request")
        record(report, method, kind, raw, lambda: call_raw(channel, method, raw, metadata, timeout_s))

    one()
    return report


def valid_requests(engine, user_id: str) -> dict[str, object]:
    """One valid request per method path (``user_id``: the customer the chat calls are made as), from the shop's
    real ids: what the field-replacing requests start from."""
    from sqlalchemy import text

    with engine.connect() as conn:
        product = conn.execute(text("select product_id from products where in_stock order by 1 limit 1")).scalar()
        ad = conn.execute(text("select ad_id from ads where status = 'active' order by 1 limit 1")).scalar()
    view = events_pb2.Event(
        event_id="fuzz-seed", type=events_pb2.EVENT_TYPE_VIEW, user_id=user_id, product_id=product or ""
    )
    return {
        "/ads.v1.AdService/RankAds": ads_pb2.RankAdsRequest(user_id=user_id, placement_id="home_top", max_ads=3),
        "/ads.v1.AdService/PredictCtr": ads_pb2.PredictCtrRequest(
            user_id=user_id, placement_id="home_top", ad_ids=[ad or ""]
        ),
        "/recs.v1.RecommendationService/Recommend": recs_pb2.RecommendRequest(user_id=user_id, k=5),
        "/recs.v1.RecommendationService/SimilarProducts": recs_pb2.SimilarProductsRequest(product_id=product, k=5),
        "/recs.v1.RecommendationService/SearchProducts": recs_pb2.SearchProductsRequest(query="gift", k=5),
        "/chat.v1.ChatService/SendMessage": chat_pb2.SendMessageRequest(text="hello"),
        "/chat.v1.ChatService/ListConversations": chat_pb2.ListConversationsRequest(user_id=user_id, limit=5),
        "/events.v1.EventService/RecordEvents": events_pb2.RecordEventsRequest(events=[view]),
    }
