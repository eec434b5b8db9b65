"""What the DDL audit trigger costs a migration: DDL statements per second on prod's schema with and
without `workflow.ddl_audit`'s event triggers, and the audit report's own run time over a week.

    python bench/ddl_audit.py [--statements 300]

Runs on a throwaway local PostgreSQL 15 (sandbox.postgres): creates and drops tables with a column
and an index in schema `app` (what a drizzle-kit push sends), first without the triggers, then with
them installed; then times `python -m workflow.audit report --since 7d` reading that database with
every other source unset (they are reported missing). Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.postgres import running_postgres  # noqa: E402


def ddl_rate(url: str, statements: int) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS app")
        started = time.perf_counter()
        for i in range(statements // 3):
            conn.execute(f"CREATE TABLE app.t{i} (id int PRIMARY KEY, note text)")
            conn.execute(f"CREATE INDEX t{i}_note ON app.t{i} (note)")
            conn.execute(f"DROP TABLE app.t{i}")
        return (statements // 3 * 3) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=300)
    args = parser.parse_args()
    with running_postgres() as server:
        db = server.create_database()
        url = db.url
        plain = ddl_rate(url, args.statements)
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "workflow.ddl_audit", "install"], cwd=ROOT, env=env, check=True, capture_output=True)
        audited = ddl_rate(url, args.statements)
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT count(*) FROM webstack_audit.ddl_events").fetchone()[0]
        report_env = {k: v for k, v in env.items() if not k.startswith(("GITHUB_", "AWS_", "CLOUDFLARE_", "GH_"))}
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "workflow.audit", "report", "--since", "7d", "--markdown", os.devnull],
            cwd=ROOT, env=report_env, check=True, capture_output=True,
        )  # fmt: skip
        report_seconds = time.perf_counter() - started
    print(f"DDL statements/s on app without the audit triggers: {plain:8.1f}")
    print(f"DDL statements/s on app with the audit triggers:    {audited:8.1f}  ({(plain / audited - 1) * 100:+.0f}% time per statement)")
    print(f"rows recorded: {rows} for {args.statements // 3 * 3} statements (CREATE TABLE records the table and its primary key's index; DROP TABLE only the table it names)")
    print(f"audit report over 7 days of {rows} DDL rows, other sources missing: {report_seconds:.2f} s")


if __name__ == "__main__":
    main()
