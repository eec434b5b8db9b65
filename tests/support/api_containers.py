"""Warm "containers" of the bundled API handler: one `node` process each, as Lambda keeps one per
concurrent execution, holding its pool between requests.

    with containers(bundle, count=5, requests=4, env=...) as group:
        results = group.run(event)                # every container at once, its requests concurrently
        ...                                       # the containers are still alive, pools warm
    # closed: every node process has exited

A container loads the bundle; for each event line on stdin it runs its requests at once and
prints one JSON line, a list of `{"status", "ms", "retryAfter", "body"}`; it exits when stdin
closes, so a test sees the connections the pools keep between requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

CONTAINER = """
const { handler } = require(process.argv[1]);
const requests = Number(process.argv[2]);
const readline = require('readline').createInterface({ input: process.stdin });
readline.on('line', async (line) => {
  const event = JSON.parse(line);
  const one = async () => {
    const started = Date.now();
    const r = await handler(event);
    return { status: r.statusCode, ms: Date.now() - started, retryAfter: (r.headers || {})['retry-after'] ?? null,
             body: JSON.parse(r.body || 'null') };
  };
  const results = await Promise.all(Array.from({ length: requests }, one));
  process.stdout.write(JSON.stringify(results) + '\\n');
});
readline.once('close', () => process.exit(0));
"""


@dataclass
class Containers:
    processes: list[subprocess.Popen]
    logs: list[Any]
    logged: str | None = None

    def run(self, event: Mapping[str, Any], *, timeout: float = 60) -> list[list[dict]]:
        """Start every container's requests at once; each container's results, in order."""
        line = json.dumps(event) + "\n"
        for process in self.processes:
            process.stdin.write(line)
            process.stdin.flush()

        def result(process: subprocess.Popen) -> list[dict]:
            answer = process.stdout.readline()
            assert answer, f"container exited without answering: {self.stderr()}"
            return json.loads(answer)

        with ThreadPoolExecutor(len(self.processes)) as pool:
            futures = [pool.submit(result, process) for process in self.processes]
            _, pending = wait(futures, timeout=timeout)
            if pending:  # a container that never answers is killed, so its reader returns
                for process in self.processes:
                    process.kill()
                raise AssertionError(f"{len(pending)} containers did not answer within {timeout}s: {self.stderr()[-3000:]}")
            return [future.result() for future in futures]

    def stderr(self) -> str:
        """What the containers logged (the handler's console.error), also after they exited."""
        if self.logged is None:
            text = []
            for log in self.logs:
                log.seek(0)
                text.append(log.read().decode(errors="replace"))
            return "".join(text)
        return self.logged


@contextlib.contextmanager
def containers(bundle: Path, *, count: int, requests: int, env: Mapping[str, str]) -> Iterator[Containers]:
    logs = [tempfile.TemporaryFile() for _ in range(count)]
    processes = [
        subprocess.Popen(
            ["node", "-e", CONTAINER, str(bundle), str(requests)],
            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        for log in logs
    ]
    group = Containers(processes, logs)
    try:
        yield group
    finally:
        for process in processes:
            with contextlib.suppress(BrokenPipeError, OSError):
                process.stdin.close()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        group.logged = group.stderr()
        for log in logs:
            log.close()


def role_connections(conn: psycopg.Connection, role: str) -> int:
    """Server connections `role` holds now, as the server counts them."""
    return conn.execute("select count(*) from pg_stat_activity where usename = %s", (role,)).fetchone()[0]


@contextlib.contextmanager
def peak_connections(url: str, role: str) -> Iterator[dict]:
    """`{"peak": n}`: the most connections `role` held at once, sampled every 10 ms on a
    connection of its own (`url`, a superuser's) until the block ends."""
    seen = {"peak": 0}
    stop = threading.Event()
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)

    def sample() -> None:
        while not stop.is_set():
            seen["peak"] = max(seen["peak"], role_connections(conn, role))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()
        conn.close()
