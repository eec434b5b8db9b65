"""HTTP stand-in fixtures for tests: `http_stub` (nothing scripted) and `webhook` (answers 200 "ok",
like Slack). The server itself is the sandbox's (`sandbox.http_server`).

Use them by importing them into a test module or through `pytest_plugins`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.http_server import Reply, Request, Responder, StubServer  # noqa: F401 - re-exported


@pytest.fixture
def http_stub() -> Iterator[StubServer]:
    """A StubServer with nothing scripted: script() or route() it in the test."""
    with StubServer() as stub:
        yield stub


@pytest.fixture
def webhook() -> Iterator[StubServer]:
    """A webhook receiver answering 200 "ok" (Slack's answer) to everything, until re-scripted."""
    with StubServer() as stub:
        stub.script(Reply(200, body="ok"))
        yield stub
