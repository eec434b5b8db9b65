"""A DNS server on a loopback UDP port for tests (dnslib), standing in for public resolvers.

    with DnsStub() as dns:
        dns.set("pr-7.app.example.com", "CNAME", "pr-7.webstack-site.pages.dev", after=1.5)
        ... resolve against dns.address (127.0.0.1:<port>) ...

A name answers NXDOMAIN until `after` seconds have passed since `set`, then its record (the way a
new record appears on a resolver once it propagated). Every query is recorded as
`(monotonic time, name, type)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dnslib import CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


@dataclass(frozen=True)
class _Record:
    rtype: str
    value: str
    visible_at: float


class _Resolver(BaseResolver):
    def __init__(self, stub: DnsStub):
        self.stub = stub

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.stub._lock:
            self.stub.queries.append((time.monotonic(), qname, qtype))
            record = self.stub._records.get(qname)
        if record is None or time.monotonic() < record.visible_at:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if record.rtype == qtype or record.rtype == "CNAME":
            rdata = CNAME(record.value) if record.rtype == "CNAME" else A(record.value)
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, record.rtype), rdata=rdata, ttl=60))
        return reply


class DnsStub:
    """A dnslib UDP server on 127.0.0.1 and an ephemeral port; use as a context manager."""

    def __init__(self) -> None:
        self.queries: list[tuple[float, str, str]] = []
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()
        self._server = DNSServer(_Resolver(self), port=0, address="127.0.0.1", logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))

    @property
    def port(self) -> int:
        return self._server.server.server_address[1]

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT`, the form `steps.dns_wait --resolver` takes."""
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, rtype: str, value: str, *, after: float = 0.0) -> None:
        with self._lock:
            self._records[name.rstrip(".").lower()] = _Record(rtype, value, time.monotonic() + after)

    def __enter__(self) -> DnsStub:
        self._server.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
        self._server.server.server_close()


@pytest.fixture
def dns_stub() -> Iterator[DnsStub]:
    with DnsStub() as stub:
        yield stub
