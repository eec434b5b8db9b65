"""The bundled API handler under plain `node` (no Docker): JWT checks against a loopback JWKS.

The bundle is built once by the real step; each case runs `node -e` (require the bundle, call
`handler(event)`, print the result) with `JWKS_URL` at a loopback server that publishes one test
key. Tokens are signed by `tests/support/jwt_tool.mjs` with the app's own `jose`.

The valid-token case runs against a real PostgreSQL (tests/support/postgres.py) whose schema the
app's own `drizzle-kit push` created, with a user and a project in it: 200 with that project
proves the token passed and its `sub` reached the query.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.http_stub import Reply, StubServer
from tests.support.lambda_bundle import APP, REPO, build
from tests.support.moto import moto_server  # noqa: F401 - fixture
from tests.support.postgres import pg_database, postgres  # noqa: F401 - fixtures
from tests.support.app_database import SCHEMA, SUBJECT, app_database  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

ISSUER = "https://auth.example.test/"
AUDIENCE = "webstack-api"
JWKS_PATH = "/.well-known/jwks.json"
RUN_HANDLER = """
const { handler } = require(process.argv[1]);
handler(JSON.parse(process.argv[2])).then(
  (r) => process.stdout.write(JSON.stringify(r), () => process.exit(0)),
  (e) => { console.error(e); process.exit(2); },
);
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "dist"
    skip_log = out.parent / "skipped.jsonl"
    result = build(out=out, aws=moto_server, env={"STEPS_SKIP_LOG": str(skip_log)})
    assert result.returncode == 0, result.stderr
    return out / "index.js"


@pytest.fixture(scope="module")
def tokens() -> dict:
    now = int(time.time())
    good = {"sub": SUBJECT, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    spec = {
        "tokens": {
            "valid": {"key": "trusted", "claims": good},
            "valid_in_audience_list": {"key": "trusted", "claims": {**good, "aud": ["other", AUDIENCE]}},
            "wrong_key": {"key": "untrusted", "claims": good},
            "wrong_aud": {"key": "trusted", "claims": {**good, "aud": "someone-else"}},
            "wrong_iss": {"key": "trusted", "claims": {**good, "iss": "https://evil.example.test/"}},
            "expired": {"key": "trusted", "claims": {**good, "iat": now - 1200, "exp": now - 600}},
            "no_sub": {"key": "trusted", "claims": {k: v for k, v in good.items() if k != "sub"}},
        }
    }
    result = subprocess.run(
        ["node", str(REPO / "tests/support/jwt_tool.mjs"), str(APP)],
        input=json.dumps(spec), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def jwks(tokens: dict):
    with StubServer() as stub:
        stub.route("GET", JWKS_PATH, Reply(200, json=tokens["jwks"]))
        yield stub


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def invoke(bundle: Path, path: str, *, authorization: str | None = None, **env: str) -> tuple[int, dict, dict]:
    """Run the handler once in a fresh node process; (status, headers, parsed body)."""
    headers = {"authorization": authorization} if authorization is not None else {}
    event = {"rawPath": path, "headers": headers, "requestContext": {"http": {"method": "GET"}}}
    child_env = {
        **os.environ,
        "DB_SCHEMA": SCHEMA,
        # Nothing listens there: a case that reaches the database fails with 500, never 200/401.
        "DATABASE_URL": f"postgres://app:pw@127.0.0.1:{_closed_port()}/app",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": f"{AUDIENCE}, another-api",
        "APP_VERSION": "test-version",
        "NODE_OPTIONS": "--enable-source-maps",
        **env,
    }
    result = subprocess.run(
        ["node", "-e", RUN_HANDLER, str(bundle), json.dumps(event)],
        env=child_env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    return response["statusCode"], response.get("headers", {}), json.loads(response.get("body") or "null")


def test_health_needs_no_token_and_fetches_no_keys(bundle, jwks):
    status, headers, body = invoke(bundle, "/health", JWKS_URL=f"{jwks.url}{JWKS_PATH}")
    assert status == 200
    assert body == {"status": "ok", "version": "test-version", "schema": SCHEMA}
    assert headers["cache-control"] == "no-store"
    assert jwks.requests_to(JWKS_PATH) == []


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "missing bearer token"),
        ("Bearer", "missing bearer token"),
        ("Bearer not.a.jwt", "ERR_JWS_INVALID"),
        ("token:wrong_key", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
        ("token:wrong_aud", "ERR_JWT_CLAIM_VALIDATION_FAILED"),
        ("token:wrong_iss", "ERR_JWT_CLAIM_VALIDATION_FAILED"),
        ("token:expired", "ERR_JWT_EXPIRED"),
        ("token:no_sub", "token has no sub"),
    ],
)
def test_rejected_requests_get_401(bundle, jwks, tokens, authorization, reason):
    if authorization and authorization.startswith("token:"):
        authorization = f"Bearer {tokens['tokens'][authorization.removeprefix('token:')]}"

    status, headers, body = invoke(bundle, "/projects", authorization=authorization,
                                   JWKS_URL=f"{jwks.url}{JWKS_PATH}")

    assert status == 401, body
    assert body == {"error": "unauthorized", "message": reason}
    assert headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_unreachable_jwks_is_503_not_401(bundle, tokens):
    status, _, body = invoke(bundle, "/projects", authorization=f"Bearer {tokens['tokens']['valid']}",
                             JWKS_URL=f"http://127.0.0.1:{_closed_port()}{JWKS_PATH}")
    assert status == 503
    assert body["error"] == "jwks_unavailable"


@pytest.mark.parametrize("token", ["valid", "valid_in_audience_list"])
def test_valid_token_gets_200_with_the_callers_projects(bundle, jwks, tokens, app_database, token):
    status, _, body = invoke(bundle, "/projects", authorization=f"Bearer {tokens['tokens'][token]}",
                             JWKS_URL=f"{jwks.url}{JWKS_PATH}", DATABASE_URL=app_database.url)

    assert status == 200, body
    assert [p["name"] for p in body["projects"]] == ["mine"]
    assert body["projects"][0]["status"] == "active"
    assert jwks.requests_to(JWKS_PATH), "the handler must have fetched the JWKS"
