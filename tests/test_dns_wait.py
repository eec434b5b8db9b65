"""steps.dns_wait against a dnslib server on loopback that starts answering after a delay."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steps.dns_wait import Resolver, normalize, parse_resolvers
from steps.runtime import PermanentError
from tests.support.dns_stub import DnsStub, dns_stub  # noqa: F401 - fixture
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
HOST = "pr-7.app.example.com"
TARGET = "pr-7.webstack-site.pages.dev"


def dns_wait(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.dns_wait", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_resolver_forms():
    assert parse_resolvers(["1.1.1.1", "8.8.8.8:5353,9.9.9.9", "[::1]:5300", "2606:4700::1111"]) == [
        Resolver("1.1.1.1"),
        Resolver("8.8.8.8", 5353),
        Resolver("9.9.9.9"),
        Resolver("::1", 5300),
        Resolver("2606:4700::1111"),
    ]
    assert parse_resolvers(["1.1.1.1,1.1.1.1", ""]) == [Resolver("1.1.1.1")]
    with pytest.raises(PermanentError):
        parse_resolvers(["1.1.1.1:dns"])
    assert normalize("PR-7.Webstack-Site.pages.dev.") == TARGET


def test_waits_until_every_resolver_answers_the_target(dns_stub):
    with DnsStub() as second:
        # The value differs in case and trailing dot: both are ignored.
        dns_stub.set(HOST, "CNAME", TARGET.upper() + ".", after_queries=1)
        second.set(HOST, "CNAME", TARGET, after_queries=2)
        result = dns_wait(
            "--name", HOST, "--type", "CNAME", "--expect", TARGET,
            "--resolver", f"{dns_stub.address},{second.address}", "--timeout", "30",
        )
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)
        assert record["expect"] == TARGET and record["resolvers"] == [dns_stub.address, second.address]
        # It polled through the NXDOMAIN answers of the slower resolver, and stopped once it answered.
        assert len(second.queries) >= 3
        assert "not pr-7.webstack-site.pages.dev yet" in result.stderr
        assert "next wait" in result.stderr


def test_a_wrong_value_never_satisfies_it(dns_stub, steps_env):
    dns_stub.set(HOST, "CNAME", "old-target.pages.dev")
    started = time.monotonic()
    result = dns_wait("--name", HOST, "--expect", TARGET, "--resolver", dns_stub.address, "--timeout", "3")
    assert result.returncode == 1
    assert time.monotonic() - started < 20
    assert len(dns_stub.queries) >= 3  # it kept asking until the deadline
    assert f"FAILED dns_wait: {HOST} CNAME is not {TARGET} yet" in result.stderr
    assert "answers old-target.pages.dev" in result.stderr
    assert result.stdout == ""
    assert not steps_env.skip_log.exists()


def test_non_critical_warns_and_records_the_skip(dns_stub, steps_env):
    result = dns_wait("--name", HOST, "--expect", TARGET, "--resolver", dns_stub.address, "--timeout", "2", "--non-critical")
    assert result.returncode == 0
    assert json.loads(result.stdout)["skipped"] is True
    assert "SKIPPED dns_wait" in result.stderr
    [skip] = [json.loads(line) for line in steps_env.skip_log.read_text().splitlines()]
    assert skip["step"] == "dns_wait" and "answers nothing" in skip["reason"]


def test_a_bad_resolver_fails_at_once():
    started = time.monotonic()
    result = dns_wait("--name", HOST, "--expect", TARGET, "--resolver", "127.0.0.1:notaport", "--timeout", "30")
    # A bad argument: argparse's exit code, one line, before any query.
    assert result.returncode == 2
    assert time.monotonic() - started < 10
    assert result.stderr.splitlines() == [
        "python -m steps.dns_wait: error: argument --resolver: '127.0.0.1:notaport': "
        "not an IP address with an optional port 1-65535"
    ]
