"""A DNS server for tests whose records appear after a delay, standing in for public resolvers.

    with DnsStub() as dns:
        dns.set("pr-7.app.example.com", "CNAME", "pr-7.webstack-site.pages.dev", after=1.5)
        ... resolve against dns.address (127.0.0.1:<port>) ...

A name answers NXDOMAIN until `after` seconds have passed since `set`, or for its first
`after_queries` queries, then its record (the way a new record appears on a resolver once it
propagated). Counting queries keeps a test independent of how fast the machine starts the step. The server is the sandbox's
(`sandbox.dns_server`); every query is recorded as `(monotonic time, name, type)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sandbox.dns_server import DnsServer


class DnsStub(DnsServer):
    def __init__(self) -> None:
        self._records: dict[str, tuple[str, str, float]] = {}
        self._unanswered: dict[str, int] = {}
        self._records_lock = threading.Lock()
        super().__init__(self._visible)

    def _visible(self, name: str) -> tuple[str, str] | None:
        with self._records_lock:
            record = self._records.get(name)
            if record is not None and self._unanswered.get(name, 0) > 0:
                self._unanswered[name] -= 1
                return None
        if record is None or time.monotonic() < record[2]:
            return None
        return record[0], record[1]

    def set(self, name: str, rtype: str, value: str, *, after: float = 0.0, after_queries: int = 0) -> None:
        with self._records_lock:
            self._records[name.rstrip(".").lower()] = (rtype, value, time.monotonic() + after)
            self._unanswered[name.rstrip(".").lower()] = after_queries


@pytest.fixture
def dns_stub() -> Iterator[DnsStub]:
    with DnsStub() as stub:
        yield stub
