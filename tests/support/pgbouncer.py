"""A real PgBouncer (Debian's package) in transaction mode, on loopback, in front of a test server.

    with running_pgbouncer(server, pool_size=2) as bouncer:
        bouncer.url("dbname", user="api")       # postgres://api:...@127.x.y.z:6543/dbname

It listens on port 6543, the transaction pooler's port the settings know, on an address of its
own in 127.0.0.0/8 (the whole block is this machine's loopback), so tests running at the same
time never compete for the port. It runs as the unprivileged test user (PgBouncer refuses root),
with its config, log and pid file in a temp dir, `auth_type = trust` like the server behind it,
and `admin_users` so a test can ask it `SHOW POOLS`. Missing binaries fail the test with what to
install (`.ci/setup` installs `pgbouncer`).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from sandbox.postgres import OS_USER, PASSWORD, SUPERUSER, PostgresServer, _ensure_os_user
from steps.database import TRANSACTION_POOLER_PORT

_START_TIMEOUT = 20


class PgBouncerUnavailable(RuntimeError):
    """pgbouncer is not installed or would not start."""


@dataclass
class PgBouncer:
    host: str
    port: int
    root: Path
    process: subprocess.Popen

    def url(self, dbname: str, *, user: str = SUPERUSER) -> str:
        return f"postgres://{user}:{PASSWORD}@{self.host}:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        """PgBouncer's admin console (SHOW POOLS, SHOW STATS); simple queries only."""
        return psycopg.connect(self.url("pgbouncer"), autocommit=True, connect_timeout=5, prepare_threshold=None)

    @property
    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _config(server: PostgresServer, host: str, root: Path, pool_size: int, max_client_conn: int) -> str:
    return "\n".join(
        [
            "[databases]",
            f"* = host=127.0.0.1 port={server.port}",
            "[pgbouncer]",
            f"listen_addr = {host}",
            f"listen_port = {TRANSACTION_POOLER_PORT}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {root / 'userlist.txt'}",
            f"admin_users = {SUPERUSER}",
            "pool_mode = transaction",
            f"default_pool_size = {pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            f"max_client_conn = {max_client_conn}",
            f"logfile = {root / 'pgbouncer.log'}",
            f"pidfile = {root / 'pgbouncer.pid'}",
            # node-postgres sends none of these, psycopg may; PgBouncer refuses unknown ones.
            "ignore_startup_parameters = extra_float_digits,options",
            "",
        ]
    )


def start_pgbouncer(
    server: PostgresServer, *, pool_size: int = 2, max_client_conn: int = 100, users: tuple[str, ...] = (SUPERUSER,)
) -> PgBouncer:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).is_file():
        raise PgBouncerUnavailable("pgbouncer not found: install it (Debian: apt-get install -y pgbouncer; .ci/setup does)")
    root = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    ids: dict[str, int] = {}
    if os.geteuid() == 0:
        user = _ensure_os_user()
        os.chown(root, user.pw_uid, user.pw_gid)
        ids = {"user": user.pw_uid, "group": user.pw_gid}
    (root / "userlist.txt").write_text("".join(f'"{name}" "{PASSWORD}"\n' for name in {SUPERUSER, *users}))
    last_error = ""
    for _ in range(5):  # another address when the chosen one is taken
        host = f"127.{random.randint(16, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"  # noqa: S311 - not a secret
        ini = root / "pgbouncer.ini"
        ini.write_text(_config(server, host, root, pool_size, max_client_conn))
        process = subprocess.Popen(
            [binary, str(ini)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **ids
        )
        bouncer = PgBouncer(host=host, port=TRANSACTION_POOLER_PORT, root=root, process=process)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection((host, bouncer.port), timeout=1):
                return bouncer
            time.sleep(0.1)
        last_error = bouncer.log[-2000:] or (process.stdout.read().decode(errors="replace") if process.poll() is not None else "")
        stop_pgbouncer(bouncer, remove=False)
    shutil.rmtree(root, ignore_errors=True)
    raise PgBouncerUnavailable(f"pgbouncer would not start as {OS_USER}: {last_error}")


def stop_pgbouncer(bouncer: PgBouncer, *, remove: bool = True) -> None:
    if bouncer.process.poll() is None:
        bouncer.process.send_signal(signal.SIGTERM)  # immediate shutdown (SIGINT would wait for clients)
        try:
            bouncer.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bouncer.process.kill()
            bouncer.process.wait(timeout=10)
    if bouncer.process.stdout:
        bouncer.process.stdout.close()
    if remove:
        shutil.rmtree(bouncer.root, ignore_errors=True)


@contextlib.contextmanager
def running_pgbouncer(server: PostgresServer, **kwargs) -> Iterator[PgBouncer]:
    bouncer = start_pgbouncer(server, **kwargs)
    try:
        yield bouncer
    finally:
        stop_pgbouncer(bouncer)
