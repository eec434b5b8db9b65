"""Deploy step: wait until DNS answers the expected record on every configured resolver.

`python -m steps.dns_wait --name HOST --type TYPE --expect VALUE [--resolver ADDR[:PORT][,...]]...
[--timeout SECONDS] [--non-critical]`

Asks each resolver (dnspython, no system configuration: `ADDR`, `ADDR:PORT`, `[IPv6]:PORT`, a comma
list, the flag repeatable; none = the system's resolvers) for HOST/TYPE until every one of them
answers VALUE, compared case-insensitively and ignoring the trailing dot. Until then (NXDOMAIN, no
answer, a timeout, or another value while the old record is still cached) it polls again with the
runtime's backoff, for at most `--timeout` seconds (default 300). A resolver that keeps answering
another value never satisfies it.

Critical by default (prod: the deploy stops); `--non-critical` (previews) warns, records the
skip and exits 0. Prints `{"name", "type", "expect", "resolvers", "elapsed_s"}` on success.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver

from steps.runtime import PermanentError, TransientError, log, run_step

DEFAULT_PORT = 53
# One query never takes longer than this, so a dead resolver still leaves time for more polls.
_QUERY_TIMEOUT = 5.0


@dataclass(frozen=True)
class Resolver:
    address: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def parse_resolver(text: str) -> Resolver:
    """`ADDR`, `ADDR:PORT`, `[IPv6]` or `[IPv6]:PORT`; a bare IPv6 address has no port."""
    text = text.strip()
    try:
        if text.startswith("["):
            address, _, rest = text[1:].partition("]")
            return Resolver(address, int(rest.removeprefix(":")) if rest else DEFAULT_PORT)
        if text.count(":") == 1:
            address, port = text.split(":")
            return Resolver(address, int(port))
    except ValueError:
        raise PermanentError(f"bad --resolver {text!r}", hint="use ADDR, ADDR:PORT or [IPv6]:PORT") from None
    return Resolver(text)


def parse_resolvers(values: list[str] | None) -> list[Resolver]:
    items = [item for value in values or [] for item in value.split(",") if item.strip()]
    return list(dict.fromkeys(parse_resolver(item) for item in items))


def normalize(value: str) -> str:
    return value.strip().rstrip(".").lower()


def lookup(resolver: Resolver | None, name: str, rtype: str, timeout: float) -> list[str]:
    """The normalized answers of one resolver (None: the system's); [] when there are none yet."""
    if resolver is None:
        client = dns.resolver.Resolver()
    else:
        client = dns.resolver.Resolver(configure=False)
        client.nameservers = [resolver.address]
        client.port = resolver.port
    client.lifetime = timeout
    client.timeout = timeout
    client.cache = None
    try:
        answer = client.resolve(name, rtype, raise_on_no_answer=False, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout):
        return []
    if answer.rrset is None:
        return []
    return sorted(normalize(rdata.to_text()) for rdata in answer.rrset)


def check(name: str, rtype: str, expect: str, resolvers: list[Resolver], started: float, timeout: float) -> dict:
    """One poll of every resolver: the result when all answer `expect`, else TransientError."""
    wanted = normalize(expect)
    pending = []
    for resolver in resolvers or [None]:
        answers = lookup(resolver, name, rtype, timeout)
        if wanted not in answers:
            pending.append(f"{resolver or 'system resolver'} answers {', '.join(answers) or 'nothing'}")
    label = f"{name} {rtype}"
    if pending:
        raise TransientError(
            f"{label} is not {wanted} yet: {'; '.join(pending)}",
            hint=f"the record has not propagated: check the {rtype} record of {name} points at {wanted}",
        )
    elapsed = round(time.monotonic() - started, 3)
    log(f"{label} answers {wanted} on {len(resolvers) or 'the system'} resolver(s) after {elapsed}s")
    return {"name": name, "type": rtype, "expect": wanted, "resolvers": [str(r) for r in resolvers], "elapsed_s": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steps.dns_wait", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--type", default="CNAME", type=str.upper)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--resolver", action="append", help="ADDR, ADDR:PORT or a comma list; repeatable")
    parser.add_argument("--timeout", type=float, default=300.0, help="total seconds to keep trying")
    parser.add_argument("--non-critical", action="store_true", help="warn and skip instead of failing")
    args = parser.parse_args(argv)
    try:
        dns.rdatatype.from_text(args.type)
    except dns.rdatatype.UnknownRdatatype:
        parser.error(f"unknown record type {args.type}")
    started = time.monotonic()

    def body() -> dict:
        resolvers = parse_resolvers(args.resolver)
        query_timeout = max(0.5, min(_QUERY_TIMEOUT, args.timeout - (time.monotonic() - started)))
        return check(args.name, args.type, args.expect, resolvers, started, query_timeout)

    return run_step(
        "dns_wait",
        critical=not args.non_critical,
        body=body,
        # The deadline, not a count, bounds the wait.
        attempts=10_000,
        deadline=args.timeout,
        initial_wait=2.0,
        max_wait=15.0,
    )


if __name__ == "__main__":
    sys.exit(main())
