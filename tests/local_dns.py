"""A DNS server on loopback that answers one name with several A records, the way compose's DNS answers a service
scaled to N replicas (or a Kubernetes headless Service): gRPC's resolver asks it when the target names it as the
authority, ``dns://127.0.0.1:PORT/ads.test:50051``. Queries for any other name get NXDOMAIN; other record types of
the name (AAAA, TXT, SRV) get an empty answer. Standard library only (RFC 1035 wire format, UDP)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TYPE_A, CLASS_IN = 1, 1


def _question(packet: bytes) -> tuple[str, int, int]:
    """(name, end offset of the question, query type) of a query."""
    labels, at = [], 12
    while packet[at]:
        size = packet[at]
        labels.append(packet[at + 1 : at + 1 + size].decode("ascii").lower())
        at += 1 + size
    qtype = struct.unpack("!H", packet[at + 1 : at + 3])[0]
    return ".".join(labels), at + 5, qtype


def answer(packet: bytes, name: str, addresses: list[str]) -> bytes:
    """The response to ``packet``: ``addresses`` as A records when it asks for ``name``'s A records."""
    asked, end, qtype = _question(packet)
    known = asked == name.lower().rstrip(".")
    records = [a for a in addresses if known and qtype == TYPE_A]
    flags = 0x8180 | (0 if known else 3)  # response, recursion desired + available; rcode NXDOMAIN when unknown
    header = struct.pack("!HHHHHH", struct.unpack("!H", packet[:2])[0], flags, 1, len(records), 0, 0)
    body = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, 1, 4) + socket.inet_aton(a) for a in records
    )  # 0xC00C: the name at offset 12 (the question's); TTL 1 s
    return header + packet[12:end] + body


@contextmanager
def dns_server(name: str, addresses: list[str]) -> Iterator[int]:
    """Serves ``name`` -> ``addresses`` on 127.0.0.1 over UDP until the block ends; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                packet, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            try:
                sock.sendto(answer(packet, name, addresses), peer)
            except (IndexError, UnicodeDecodeError, struct.error):
                continue  # not a query we can parse: no answer, as a real server would drop it

    thread = threading.Thread(target=serve, daemon=True, name="local-dns")
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        sock.close()
