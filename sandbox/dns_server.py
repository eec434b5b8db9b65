"""A DNS server on a loopback UDP port (dnslib), standing in for the public resolvers.

    server = DnsServer(lookup, port=0)     # lookup(name) -> (type, value) | None
    server.start(); server.address         # "127.0.0.1:PORT", what `steps.dns_wait --resolver` takes

The sandbox answers from the Cloudflare stand-in's DNS records (what the program's DnsRecord
created there), so the pipeline's DNS propagation check asks a real DNS server about records the
real provider protocol wrote. A name with no record answers NXDOMAIN; a CNAME answers any query
type for its name, as a resolver returns the alias first. Every query is recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dnslib import CNAME, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

Lookup = Callable[[str], "tuple[str, str] | None"]
_RDATA = {"CNAME": CNAME, "A": A, "TXT": TXT}


class _Resolver(BaseResolver):
    def __init__(self, server: DnsServer):
        self.server = server

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.server.record_query(qname, qtype)
        try:
            record = self.server.lookup(qname)
        except Exception:  # noqa: BLE001 - a failing lookup is a server failure, not a crash
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if record is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        rtype, value = record
        if (rtype == qtype or rtype == "CNAME") and rtype in _RDATA:
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, rtype), rdata=_RDATA[rtype](value), ttl=60))
        return reply


class DnsServer:
    """A dnslib UDP server on 127.0.0.1; `start()`/`stop()` or a context manager."""

    def __init__(self, lookup: Lookup, *, port: int = 0):
        self.lookup = lookup
        self.queries: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data")
        self._server = DNSServer(_Resolver(self), port=port, address="127.0.0.1", logger=quiet)

    def record_query(self, name: str, rtype: str) -> None:
        with self._lock:
            self.queries.append((time.monotonic(), name, rtype))

    @property
    def port(self) -> int:
        return self._server.server.server_address[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DnsServer:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
