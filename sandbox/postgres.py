"""A throwaway PostgreSQL server: real `initdb` + `postgres`, on loopback, for the tests and the
local sandbox.

    server = start_postgres()                      # a temp dir, a free port
    server = start_postgres(root=Path(".sandbox/postgres"), port=5433)   # the sandbox's
    server.url("app"), server.connect(), server.create_database(), server.stop()

Tests use the fixtures in `tests/support/postgres.py` (`postgres`, `pg_database`).

How it runs (docs/facts.md, "PostgreSQL in tests"):
- binaries from `$PG_BINDIR`, else `pg_config --bindir`, else /usr/lib/postgresql/<N>/bin
  (newest first); missing binaries raise PostgresUnavailable saying what to install;
- `initdb`/`postgres` refuse root: as root they run as the unprivileged user `pgtest`
  (created with `useradd -M` if missing) through `runuser -u pgtest --`;
- data and socket directory under `root`, owned by that user; TCP only on 127.0.0.1;
  `--auth=trust`, yet URLs carry a password because drizzle-kit rejects an empty one;
- durability is off (fsync, full_page_writes, synchronous_commit): the data is disposable;
- stop is `pg_ctl stop -m immediate`, then `root` is removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from core.versions import POSTGRES_MAJOR

OS_USER = "pgtest"
SUPERUSER = "postgres"
# Any password: trust auth ignores it, drizzle-kit insists on one.
PASSWORD = "test-password"
_START_TIMEOUT = 60


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the server would not start."""


def find_bindir() -> Path:
    """The directory holding `initdb`, `pg_ctl` and `postgres`, or PostgresUnavailable."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: -int(p.name))
        candidates += [v / "bin" for v in versions]
    for path in candidates:
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    looked = ", ".join(str(c) for c in candidates) or "nowhere (no pg_config, no /usr/lib/postgresql)"
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in "
        f"{looked}. Install them (Debian: apt-get install -y postgresql-{POSTGRES_MAJOR}) or set PG_BINDIR."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "-M", "-s", "/usr/sbin/nologin", OS_USER], check=True, capture_output=True
        )
        return pwd.getpwnam(OS_USER)


@dataclass(frozen=True)
class Database:
    """One database on the test server."""

    server: PostgresServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return self.server.connect(self.name, **kwargs)


@dataclass(frozen=True)
class PostgresServer:
    """A running server: `url(db)`, `connect(db)`, `create_database()`, `drop_database()`, `stop()`."""

    bindir: Path
    root: Path
    port: int
    run_as: tuple[str, ...]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgres://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: object) -> psycopg.Connection:
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.url(dbname), **kwargs)

    def create_database(self, name: str | None = None) -> Database:
        name = name or f"t_{secrets.token_hex(6)}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return Database(self, name)

    def terminate_sessions(self, dbname: str) -> None:
        """End every other session on `dbname` (a killed client's backend lingers otherwise)."""
        with self.connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )

    def drop_database(self, name: str) -> None:
        self.terminate_sessions(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def pg_ctl(self, *args: str, timeout: float = _START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """Stop at once (`-m immediate`: nothing to keep) and remove the temp dir."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self.pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(
    *, bindir: Path | None = None, root: Path | None = None, port: int | None = None, max_connections: int = 60
) -> PostgresServer:
    """initdb a new cluster under `root` (default: a new temp dir) and start it on 127.0.0.1:`port`
    (default: a free one). `root` must not hold a cluster yet; it is removed by `stop()`.
    `max_connections` low makes a server that runs out of connections (3 stay reserved for superusers)."""
    bindir = bindir or find_bindir()
    run_as: tuple[str, ...] = ()
    root = Path(tempfile.mkdtemp(prefix="pgtest-")) if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = _ensure_os_user()
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ("runuser", "-u", OS_USER, "--")
    socket_dir = root / "socket"
    try:
        init = subprocess.run(
            [
                *run_as, str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
            ],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({init.returncode}): {init.stderr or init.stdout}")
        subprocess.run([*run_as, "mkdir", "-p", str(socket_dir)], check=True)
        last_error = ""
        for _ in range(1 if port else 3):  # a free port can be taken between probing and binding
            server = PostgresServer(bindir=bindir, root=root, port=port or _free_port(), run_as=run_as)
            options = " ".join(
                [
                    f"-p {server.port}",
                    "-c listen_addresses=127.0.0.1",
                    f"-c unix_socket_directories={socket_dir}",
                    "-c fsync=off",
                    "-c full_page_writes=off",
                    "-c synchronous_commit=off",
                    f"-c max_connections={max_connections}",
                ]
            )
            started = server.pg_ctl("start", "-w", "-t", str(_START_TIMEOUT), "-l", str(server.log_file), "-o", options)
            if started.returncode == 0:
                return server
            last_error = started.stderr + started.stdout
            if server.log_file.exists():
                last_error += server.log_file.read_text(errors="replace")[-2000:]
        raise PostgresUnavailable(f"postgres would not start: {last_error}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
