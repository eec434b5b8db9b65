"""Critical path: the program's dependency graph against the seed's serial chain, with real durations.

    python bench/critical_path.py

Times each real step on a fresh copy of `examples/app`, run exactly as the program's Commands run
them (`python -m steps.<name>`): install (`npm ci` from nothing), schema + migration into a local
PostgreSQL, the Lambda bundle, the site build, `wrangler pages deploy` to the loopback Cloudflare
stand-in, the DNS check against a loopback DNS server and the health checks against a loopback
HTTP server. Cloud API calls (Lambda update, alias, DNS record) are not timed: they are the same
in both chains and cannot be reached here.

Then it computes the longest path through the recorded graph of `prod` (every resource weighted
with its step's duration, 0 for the rest) and the seed's chain: three installs and every step in
sequence. Prints both and their ratio.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.offline import Recording, config_for, run_program  # noqa: E402
from core.stack_files import stack_file_values  # noqa: E402
from sandbox.cloudflare_api import ACCOUNT, TOKEN, CloudflareStub  # noqa: E402
from tests.support.dns_stub import DnsStub  # noqa: E402
from tests.support.http_stub import Reply, StubServer  # noqa: E402
from sandbox.postgres import running_postgres  # noqa: E402

IGNORED = shutil.ignore_patterns("node_modules", ".next", "out", "dist", ".turbo")
SCHEMA = "app_bench"
# The seed runs every step in sequence and installs shared-schemas three times.
SEED_CHAIN = (
    "app-install",
    "database-migrate",
    "app-install",
    "api-build",
    "app-install",
    "site-build",
    "site-deploy",
    "checks-dns",
    "checks-site-health",
    "checks-api-health",
)


def timed(what: str, argv: list[str], *, cwd: Path, env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    print(f"  {what:<28} {seconds:7.2f} s", flush=True)
    return seconds


def step(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"steps.{name}", *args]


def measure(scratch: Path) -> dict[str, float]:
    """Runs every real step once, from a cold start of the app, and returns durations by Command name."""
    app = scratch / "app"
    shutil.copytree(ROOT / "examples" / "app", app, ignore=IGNORED)
    site = scratch / "site"
    python_path = {"PYTHONPATH": str(ROOT), "STEPS_SKIP_LOG": str(scratch / "skips.jsonl")}
    durations: dict[str, float] = {}
    print("Real step durations (a fresh copy of examples/app, npm cache as the machine has it):")
    durations["app-install"] = timed("install (npm ci)", step("install", "--app-dir", str(app)), cwd=ROOT, env=python_path)

    with running_postgres() as server:
        database = server.create_database("bench")
        env = {**python_path, "DATABASE_URL": database.url}
        durations["database-schema"] = timed(
            "schema create", step("schema", "create", "--schema", SCHEMA), cwd=ROOT, env=env
        )
        durations["database-migrate"] = timed(
            "migrate (drizzle-kit push)",
            step("migrate", "--app-dir", str(app), "--schema", SCHEMA, "--timeout", "300"),
            cwd=ROOT,
            env=env,
        )

    durations["api-build"] = timed(
        "Lambda bundle (esbuild)",
        step("build_lambda", "--app-dir", "../..", "--entry", "src/handler.ts", "--out", "dist"),
        cwd=app / "apps" / "api",
        env=python_path,
    )
    public = {"NEXT_PUBLIC_API_URL": "https://bench.lambda-url.us-east-1.on.aws/", "NEXT_PUBLIC_STACK": "prod"}
    durations["site-build"] = timed(
        "site build (next build)",
        step("build_site", "--app-dir", str(app), "--out", str(site)),
        cwd=ROOT,
        env={**python_path, **public},
    )
    with CloudflareStub() as cloudflare:
        durations["site-deploy"] = timed(
            "Pages deploy (wrangler)",
            step("pages", "deploy", "--project", "webstack-site", "--branch", "main", "--dir", str(site),
                 "--app-dir", str(app)),
            cwd=ROOT,
            env={
                **python_path,
                "CLOUDFLARE_API_TOKEN": TOKEN,
                "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
                "CLOUDFLARE_API_BASE_URL": cloudflare.api_base,
            },
        )
    with DnsStub() as dns:
        dns.set("app.example.com", "CNAME", "webstack-site.pages.dev")
        durations["checks-dns"] = timed(
            "DNS propagation check",
            step("dns_wait", "--name", "app.example.com", "--type", "CNAME", "--expect", "webstack-site.pages.dev",
                 "--resolver", dns.address, "--timeout", "30"),
            cwd=ROOT,
            env=python_path,
        )
    with StubServer() as web:
        web.script(Reply(200, body=b"ok"))
        for check in ("checks-site-health", "checks-api-health"):
            durations[check] = timed(
                check.replace("checks-", "").replace("-", " ") + " check",
                step("health", "--url", web.url + "/health", "--timeout", "30"),
                cwd=ROOT,
                env=python_path,
            )
    return durations


def longest_path(recording: Recording, durations: Mapping[str, float]) -> tuple[float, list[str]]:
    """The heaviest chain of dependencies, each resource weighted by its step's duration."""
    finish: dict[str, tuple[float, list[str]]] = {}

    def visit(urn: str) -> tuple[float, list[str]]:
        if urn not in finish:
            resource = recording.resources[urn]
            before = max(
                (visit(dependency) for dependency in resource.dependencies if dependency in recording.resources),
                default=(0.0, []),
                key=lambda item: item[0],
            )
            weight = durations.get(resource.name, 0.0)
            finish[urn] = (before[0] + weight, before[1] + ([resource.name] if weight else []))
        return finish[urn]

    return max((visit(urn) for urn in recording.resources), key=lambda item: item[0])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="critical-path-") as scratch:
        durations = measure(Path(scratch))
    config = config_for("prod", stack_file_values("prod", "webstack"))
    config["webstack:databaseUrl"] = "postgres://bench:bench@localhost:5432/bench"
    recording = run_program("prod", config, secret_keys=("webstack:databaseUrl",))

    ours, path = longest_path(recording, durations)
    seed = sum(durations[name] for name in SEED_CHAIN)
    print("\nProgram's critical path (prod):", " -> ".join(path))
    print(f"  {ours:.2f} s")
    print("Seed's serial chain:", " -> ".join(SEED_CHAIN))
    print(f"  {seed:.2f} s")
    print(f"Ratio: {ours / seed:.2f}x (target <= 0.6x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
