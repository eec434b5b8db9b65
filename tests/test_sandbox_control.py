"""The local cloud's control endpoint answers this machine's commands only, never a web page.

A page the person has open can make the browser send requests to 127.0.0.1: a form POST or a
`fetch(..., {mode: "no-cors", body: JSON.stringify(...)})` (both `text/plain` or form bodies, with
an `Origin`), or a name of its own rebound to 127.0.0.1 (its `Host`). The control endpoint takes
none of them: a request needs the token in `.sandbox/control.token` (mode 0600), the endpoint's
own loopback `Host`, no `Origin`, and a JSON body sent as JSON.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
import requests

from sandbox.cloud import CONTROL_TOKEN, control_gate, ensure_running, read_endpoints, stop
from sandbox.http_server import Reply, Request, StubServer

TOKEN = "control-token-for-the-test-0123456789"


@pytest.fixture
def control():
    """The gate in front of a handler that records what got through, on a real loopback server."""
    reached: list[Request] = []
    shut = threading.Event()

    def handler(request: Request) -> Reply:
        reached.append(request)
        if request.path == "/shutdown":
            shut.set()
        return Reply(200, json={"ok": True, "body": request.json if request.body else None})

    with StubServer() as server:
        port = int(server.url.rsplit(":", 1)[1])
        server.script(control_gate(handler, token=TOKEN, port=port))
        yield server, port, reached, shut


def own(**headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **headers}


# What a page can make a browser send: each with the Origin browsers add, some with the token a
# page cannot know (still refused), a rebound Host, a text/plain body holding JSON.
ATTACKS = {
    "form-like text/plain POST from a page": dict(
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain;charset=UTF-8"}, data='{"x": 1}'),
    "no-cors fetch, even with the token": dict(
        headers=own(Origin="https://evil.example", **{"Content-Type": "text/plain"}), data='{"x": 1}'),
    "rebound name: the page's own origin": dict(
        headers=own(Host="evil.example:{port}"), json={"x": 1}),
    "no token": dict(headers={"Content-Type": "application/json"}, json={"x": 1}),
    "a wrong token": dict(headers={"Authorization": "Bearer guess"}, json={"x": 1}),
    "JSON in a text/plain body, with the token": dict(headers=own(**{"Content-Type": "text/plain"}), data='{"x": 1}'),
    "a form body, with the token": dict(headers=own(), data={"x": "1"}),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_what_a_web_page_can_send_is_refused(control, attack):
    server, port, reached, shut = control
    options = {**ATTACKS[attack]}
    options["headers"] = {k: v.format(port=port) for k, v in options["headers"].items()}
    response = requests.post(f"{server.url}/shutdown", timeout=10, **options)
    assert response.status_code in (401, 403, 415), response.text
    assert reached == [] and not shut.is_set()


def test_this_machines_command_gets_through(control):
    server, port, reached, shut = control
    assert requests.get(f"{server.url}/status", headers=own(), timeout=10).status_code == 200
    response = requests.post(f"http://localhost:{port}/shutdown", json={}, headers=own(), timeout=10)
    assert response.status_code == 200 and shut.is_set()
    assert [r.path for r in reached] == ["/status", "/shutdown"]


@pytest.mark.slow
def test_the_daemon_keeps_its_token_private_and_a_page_cannot_stop_it(tmp_path: Path):
    root = tmp_path / ".sandbox"
    endpoints = ensure_running(root)
    try:
        token_file = root / CONTROL_TOKEN
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((root / "cloud.json").stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32 and token not in (root / "cloud.json").read_text()
        assert endpoints.control_token == token

        page = requests.post(f"{endpoints.control}/shutdown", data=json.dumps({}), timeout=10,
                             headers={"Origin": "http://127.0.0.1:9999", "Content-Type": "text/plain"})
        assert page.status_code == 403
        assert requests.post(f"{endpoints.control}/shutdown", json={}, timeout=10).status_code == 401
        assert read_endpoints(root) is not None, "still running"
        assert endpoints.token().count(".") == 2  # the client sends the token: a JWT comes back
    finally:
        stop(root)
    assert not (root / CONTROL_TOKEN).exists() and read_endpoints(root) is None
    assert os.path.isdir(root)
