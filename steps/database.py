"""The database facts the program's settings and the steps share: what a schema name may be,
which connection a migration may use, where the URL comes from, and how a step connects.

Imported by `components.settings` (validation before anything is declared) and by the steps
(validation again at deploy time, since a step can be run by hand), so the two never disagree.
"""

from __future__ import annotations

import os
import re

from core.database import STEPS_APPLICATION
from steps.console import dsn_password_ambiguous, shown
from steps.retry import PermanentError

# A plain PostgreSQL identifier, matched whole: it is also quoted with `sql.Identifier` everywhere.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Supabase's transaction pooler: drizzle-kit push hangs there (docs/facts.md).
TRANSACTION_POOLER_PORT = 6543
CONNECT_TIMEOUT = 15


def schema_name_problem(name: str) -> str | None:
    """Why `name` is not a safe schema name, or None."""
    if SCHEMA_NAME.fullmatch(name):
        return None
    return (
        f"schema name {shown(name, 80)} is not a plain PostgreSQL identifier ([a-z_][a-z0-9_]{{0,62}}): "
        "use lower-case letters, digits and '_', at most 63, not starting with a digit"
    )


_ENCODE_HINT = "in a URL, percent-encode '@', '/', '?' and '#' in the password: %40, %2F, %3F, %23"


def _params(url: str) -> dict[str, str] | str:
    """libpq's parse of `url` (URL or keyword form), or why it cannot be used.

    The messages never quote the URL or a part of it: a piece of a badly encoded password could
    stand where a host or a port is expected.
    """
    from psycopg.conninfo import conninfo_to_dict

    if dsn_password_ambiguous(url):
        return (
            "the database URL has an unencoded '@', '/', '?' or '#' in its user or password, which libpq and "
            "other parsers split differently: percent-encode them (%40, %2F, %3F, %23)"
        )
    try:
        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - psycopg's message quotes the string; say it without it
        return (
            "the database URL is not a valid PostgreSQL connection string: use "
            f"postgres://user:password@host:5432/db or host=... port=... keywords ({_ENCODE_HINT})"
        )
    for port in str(params.get("port") or "").split(","):
        port = port.strip()
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return f"the database URL has a port that is not a number from 1 to 65535 ({_ENCODE_HINT})"
    return {k: str(v) for k, v in params.items()}


def dsn_problem(url: str) -> str | None:
    """Why `url` is not a usable PostgreSQL connection string (checked before connecting), or None."""
    params = _params(url)
    return params if isinstance(params, str) else None


def connection_problem(url: str) -> str | None:
    """Why `url` cannot be used to migrate (unparseable, or the transaction pooler), or None.

    Parsed the way libpq parses it, URL or keyword form, so a port given as `port=6543` or in a
    multi-host list is seen as well as `host:6543/db`.
    """
    params = _params(url)
    if isinstance(params, str):
        return params
    if _pooler_ports(params):
        return (
            f"the database URL uses port {TRANSACTION_POOLER_PORT} (Supabase's transaction pooler), where "
            "drizzle-kit push hangs: use the direct connection or the session pooler (port 5432)"
        )
    return None


def _pooler_ports(params: dict[str, str]) -> bool:
    ports = [port.strip() for port in str(params.get("port") or "").split(",")]
    return str(TRANSACTION_POOLER_PORT) in ports


def runtime_connection_warning(url: str) -> str | None:
    """Why `url` is a poor choice for the API at run time (a direct connection), or None.

    Every warm Lambda container keeps its own pool: through a direct connection each one holds
    server connections while idle, and a traffic spike runs the server out of them. The
    transaction pooler lends a server connection per transaction instead. Only the port tells
    the pooler apart, so a pooler on another port is warned about too (a warning, not a refusal).
    """
    params = _params(url)
    if isinstance(params, str) or _pooler_ports(params):
        return None
    return (
        f"the API's runtime database URL is a direct connection (not port {TRANSACTION_POOLER_PORT}, the "
        "transaction pooler): every warm function container holds its own server connections; set "
        "RUNTIME_DATABASE_URL (or `pulumi config set --secret runtimeDatabaseUrl ...`) to the pooler"
    )


def database_url() -> str:
    """DATABASE_URL from the process environment (the CI job's secret), never from a flag;
    refused before any connection when libpq could not use it as given (`dsn_problem`)."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise PermanentError(
            "DATABASE_URL is not set",
            hint="set it in the CI job's environment (a secret), postgres://user:password@host:port/db",
        )
    problem = dsn_problem(url)
    if problem:
        raise PermanentError(
            problem.replace("the database URL", "DATABASE_URL", 1),
            hint="fix the DATABASE_URL secret of the CI job (nothing was done)",
        )
    return url


def connect(url: str, *, application_name: str = STEPS_APPLICATION):
    """An autocommit psycopg connection; errors are classified by the runtime (steps.retry)."""
    import psycopg  # imported here: the CLI's argument checks run without a database driver

    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=application_name)
