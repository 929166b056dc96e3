"""No event is lost when Postgres is briefly unreachable: the services answer UNAVAILABLE (not INTERNAL), the
client retries RecordEvents with the same event ids, and once the database is back each event is stored exactly
once.

The outage is real at the network level: the services reach the session's Postgres through a TCP proxy that the
test cuts (every open connection dropped, new ones refused) and restores, as a database restart or failover looks
to a client."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from sqlalchemy import make_url, text

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from services.composition import start_service
from shared.store.engine import make_engine
from tests.e2e_helpers import active_user, any_product, service_channel


class CuttableProxy:
    """127.0.0.1:<port> forwarding to a Postgres Unix socket, until ``cut()``; ``restore()`` listens again."""

    def __init__(self, unix_socket: str):
        self.unix_socket = unix_socket
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                try:  # wakes the thread blocked in accept(); close() alone leaves the socket listening
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.unix_socket)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def behind_proxy(platform):
    """(proxy, channels to ads and recs whose every database connection goes through it)."""
    url = make_url(platform.url)
    folder = url.query["host"]  # the session's Postgres listens on a Unix socket in this folder
    socket_file = Path(folder if isinstance(folder, str) else folder[0]) / f".s.PGSQL.{url.port or 5432}"
    proxy = CuttableProxy(str(socket_file))
    engine = make_engine(
        url.set(host="127.0.0.1", port=proxy.port, query={}).render_as_string(hide_password=False), name="outage"
    )
    running = [start_service(name, platform.settings, engine, platform.triton, port=0) for name in ("ads", "recs")]
    channels = {r.name: service_channel(platform.settings, r.name, r.port) for r in running}
    yield proxy, channels
    for channel in channels.values():
        channel.close()
    for r in running:
        r.stop(grace=0)
    engine.dispose()
    proxy.cut()


def _views(platform, n: int) -> list[events_pb2.Event]:
    user, product = active_user(platform.engine), any_product(platform.engine)
    return [
        events_pb2.Event(event_id=f"outage-{uuid.uuid4()}", type=events_pb2.EVENT_TYPE_VIEW, user_id=user,
                         product_id=product)
        for _ in range(n)
    ]  # fmt: skip


def _stored(platform, ids: list[str]) -> dict[str, int]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            text("select event_id, count(*) from events where event_id = any(:ids) group by event_id"), {"ids": ids}
        )
        return {event_id: int(count) for event_id, count in rows}


def test_postgres_down_is_unavailable_and_retried_events_are_stored_once(platform, behind_proxy):
    proxy, channels = behind_proxy
    events = events_pb2_grpc.EventServiceStub(channels["recs"])
    before = _views(platform, 5)
    assert events.RecordEvents(events_pb2.RecordEventsRequest(events=before), timeout=20).accepted == 5

    proxy.cut()
    during = _views(platform, 7)
    request = events_pb2.RecordEventsRequest(events=during)
    with pytest.raises(grpc.RpcError) as info:
        events.RecordEvents(request, timeout=20)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert "database unavailable" in info.value.details()
    assert "127.0.0.1" not in info.value.details()  # no connection details leak to callers

    # what a client does: retry the same batch (same event ids) with backoff; the database comes back meanwhile
    threading.Timer(1.0, proxy.restore).start()
    attempts, accepted, duplicates = 0, 0, 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        attempts += 1
        try:
            reply = events.RecordEvents(request, timeout=20)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            time.sleep(0.2)
            continue
        accepted, duplicates = reply.accepted, reply.duplicates
        break
    assert attempts > 1 and (accepted, duplicates) == (7, 0)
    again = events.RecordEvents(request, timeout=20)  # a retry whose first answer was lost: nothing stored twice
    assert (again.accepted, again.duplicates) == (0, 7)
    ids = [e.event_id for e in before + during]
    assert _stored(platform, ids) == {event_id: 1 for event_id in ids}


def test_the_other_rpcs_answer_unavailable_not_internal(platform, behind_proxy):
    proxy, channels = behind_proxy
    user = active_user(platform.engine)
    ads = ads_pb2_grpc.AdServiceStub(channels["ads"])
    recs = recs_pb2_grpc.RecommendationServiceStub(channels["recs"])
    proxy.cut()
    try:
        for call in (
            lambda: ads.RankAds(ads_pb2.RankAdsRequest(user_id=user, placement_id="home_top", max_ads=2), timeout=20),
            lambda: recs.Recommend(recs_pb2.RecommendRequest(user_id=user, k=4), timeout=20),
        ):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    finally:
        proxy.restore()
    reply = recs.Recommend(recs_pb2.RecommendRequest(user_id=user, k=4), timeout=20)  # and serve again after
    assert len(reply.items) == 4
