"""Naming what is wrong with request bytes the protobuf runtime refuses (pure: descriptors and bytes)."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from protos.ads.v1 import ads_pb2
from protos.events.v1 import events_pb2
from protos.recs.v1 import recs_pb2
from shared.core.wire_errors import explain_decode_error


def _refused(message_type, data: bytes) -> str:
    with pytest.raises(DecodeError):
        message_type.FromString(data)  # the runtime refuses these bytes; the explanation says why
    return explain_decode_error(message_type.DESCRIPTOR, data)


def test_invalid_utf8_names_the_field_path():
    data = ads_pb2.RankAdsRequest(placement_id="x", context=ads_pb2.AdContext(query="hello")).SerializeToString()
    reason = _refused(ads_pb2.RankAdsRequest, data.replace(b"hello", b"h\xc3llo"))
    assert reason == "context.query: not valid UTF-8 (byte 1 of the string)"


def test_a_repeated_message_field_is_named_too():
    data = events_pb2.RecordEventsRequest(events=[events_pb2.Event(event_id="abcd")]).SerializeToString()
    assert _refused(events_pb2.RecordEventsRequest, data.replace(b"abcd", b"ab\xffd")).startswith("events.event_id: ")


def test_truncated_bytes_name_the_field_cut_short():
    data = recs_pb2.RecommendRequest(user_id="user-1").SerializeToString()
    assert _refused(recs_pb2.RecommendRequest, data[:-2]) == "user_id: length 6 runs past the end of the message"
    assert _refused(recs_pb2.RecommendRequest, b"\x80") == "request: truncated varint at byte 1"
