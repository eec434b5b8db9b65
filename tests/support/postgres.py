"""PostgreSQL fixtures for tests: the throwaway server of `sandbox.postgres`, one per session.

    from tests.support.postgres import PostgresServer, postgres, pg_database  # noqa: F401

- `postgres` (session scope): one server for the whole session, a `PostgresServer`.
- `pg_database` (function scope): a new database on that server, dropped after the test (its
  sessions terminated first).

Missing server binaries FAIL the tests with a message saying what to install: the slow tier must
not turn green by skipping (`.ci/run` installs postgresql-15).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.postgres import (  # noqa: F401 - re-exported for the tests
    PASSWORD,
    SUPERUSER,
    Database,
    PostgresServer,
    PostgresUnavailable,
    running_postgres,
    start_postgres,
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (fails, never skips, when it cannot start)."""
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(postgres: PostgresServer) -> Iterator[Database]:
    """A fresh database for one test, dropped (sessions terminated first) after it."""
    database = postgres.create_database()
    try:
        yield database
    finally:
        postgres.drop_database(database.name)
