"""The API's database connections: requests per second through PgBouncer against direct, and the
peak server connections N concurrent invocations use.

    python bench/db_connections.py [--containers 10 40] [--rounds 15] [--pooler-pool 4]

Everything is real and on this machine: PostgreSQL 15 (a temp dir), the app's tables pushed by its
own drizzle-kit, the handler bundled by the build step and run under `node` as warm containers
(tests/support/api_containers.py: one process per concurrent execution, one request at a time,
a pool of one), tokens signed by the app's `jose` against a loopback JWKS, and Debian's PgBouncer
in transaction mode with `--pooler-pool` server connections. Each round every container serves
one GET /projects (JWT check plus one query); the rounds are timed together. Peak connections are
the backends of the path's own role in `pg_stat_activity`, sampled every 10 ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.postgres import PASSWORD, running_postgres  # noqa: E402
from tests.support.api_containers import containers, peak_connections  # noqa: E402
from tests.support.app_database import APP, SCHEMA, SUBJECT, add_project, push_app_schema  # noqa: E402
from tests.support.http_stub import Reply, StubServer  # noqa: E402
from tests.support.lambda_bundle import build  # noqa: E402
from tests.support.pgbouncer import running_pgbouncer  # noqa: E402

# One role per path, so that PgBouncer's idle server connections never count as direct ones.
DIRECT_ROLE = "api"
POOLED_ROLE = "api_pooled"
ISSUER = "https://auth.example.test/"
AUDIENCE = "webstack-api"


def signed_token() -> tuple[dict, str]:
    now = int(time.time())
    spec = {"tokens": {"valid": {"key": "trusted", "claims": {"sub": SUBJECT, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600}}}}
    made = subprocess.run(
        ["node", str(ROOT / "tests/support/jwt_tool.mjs"), str(APP)],
        input=json.dumps(spec), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    answer = json.loads(made.stdout)
    return answer["jwks"], answer["tokens"]["valid"]


def measure(bundle: Path, url: str, role: str, monitor_url: str, env: dict, event: dict, count: int, rounds: int) -> tuple[float, int]:
    """(requests per second, peak connections of the role) for `count` warm containers."""
    env = {**env, "DATABASE_URL": url, "DB_POOL_SIZE": "1"}
    with containers(bundle, count=count, requests=1, env=env) as group:
        group.run(event)  # warm: node loaded, JWKS fetched, pool connected
        with peak_connections(monitor_url, role) as seen:
            started = time.perf_counter()
            for _ in range(rounds):
                results = group.run(event)
                bad = [r["status"] for rs in results for r in rs if r["status"] != 200]
                if bad:
                    raise SystemExit(f"{len(bad)} requests failed ({bad[:3]}): {group.stderr()[-1000:]}")
            elapsed = time.perf_counter() - started
    return count * rounds / elapsed, seen["peak"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pooler-pool", type=int, default=4)
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "dist"
        built = build(out=out)
        if built.returncode != 0:
            raise SystemExit(f"build failed: {built.stderr[-2000:]}")
        bundle = out / "index.js"
        jwks, token = signed_token()
        with running_postgres() as server, StubServer() as jwks_server:
            jwks_server.route("GET", "/jwks.json", Reply(200, json=jwks))
            database = server.create_database("bench")
            push_app_schema(database.url, SCHEMA)
            with database.connect() as conn:
                add_project(conn, SCHEMA, SUBJECT, "mine")
                for role in (DIRECT_ROLE, POOLED_ROLE):
                    conn.execute(f"create role {role} login password '{PASSWORD}'")
                    conn.execute(f'grant usage on schema "{SCHEMA}" to {role}')
                    conn.execute(f'grant select on all tables in schema "{SCHEMA}" to {role}')
            env = {"JWKS_URL": f"{jwks_server.url}/jwks.json", "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE, "DB_SCHEMA": SCHEMA}
            event = {"rawPath": "/projects", "headers": {"authorization": f"Bearer {token}"}, "requestContext": {"http": {"method": "GET"}}}
            direct = f"postgres://{DIRECT_ROLE}:{PASSWORD}@127.0.0.1:{server.port}/bench"
            with running_pgbouncer(server, pool_size=options.pooler_pool, users=(POOLED_ROLE,)) as bouncer:
                pooled = bouncer.url("bench", user=POOLED_ROLE)
                print(f"GET /projects from N warm containers (pool of 1 each), {options.rounds} rounds; PgBouncer transaction mode, {options.pooler_pool} server connections")
                print(f"{'N':>4}  {'direct req/s':>12}  {'direct peak':>11}  {'PgBouncer req/s':>15}  {'PgBouncer peak':>14}")
                for count in options.containers:
                    direct_rate, direct_peak = measure(bundle, direct, DIRECT_ROLE, database.url, env, event, count, options.rounds)
                    pooled_rate, pooled_peak = measure(bundle, pooled, POOLED_ROLE, database.url, env, event, count, options.rounds)
                    print(f"{count:>4}  {direct_rate:>12.0f}  {direct_peak:>11}  {pooled_rate:>15.0f}  {pooled_peak:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
