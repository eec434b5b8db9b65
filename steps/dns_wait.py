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

Bad arguments (a name that is not a valid DNS name, a resolver that is not an IP address with an
optional port 1-65535, an unknown record type, a timeout that is not a positive finite number of
seconds) exit 2 with one line before any query is sent.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from steps.args import StepParser, positive_seconds
from steps.runtime import PermanentError, TransientError, log, run_step, shown

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
    """`ADDR`, `ADDR:PORT`, `[IPv6]` or `[IPv6]:PORT`; a bare IPv6 address has no port.

    ADDR must be an IP address (no name: resolving the resolver would need a resolver) and PORT
    1-65535; anything else is a PermanentError.
    """
    text = text.strip()
    try:
        if text.startswith("["):
            address, _, rest = text[1:].partition("]")
            if rest and not rest.startswith(":"):
                raise ValueError(rest)
            port = int(rest.removeprefix(":")) if rest else DEFAULT_PORT
        elif text.count(":") == 1:
            address, raw_port = text.split(":")
            port = int(raw_port)
        else:
            address, port = text, DEFAULT_PORT
        address = str(ipaddress.ip_address(address))
        if not 0 < port < 65536:
            raise ValueError(port)
    except ValueError:
        raise PermanentError(
            f"bad --resolver {shown(text)}: not an IP address with an optional port 1-65535",
            hint="use ADDR, ADDR:PORT or [IPv6]:PORT",
        ) from None
    return Resolver(address, port)


def parse_resolvers(values: list[str] | None) -> list[Resolver]:
    items = [item for value in values or [] for item in value.split(",") if item.strip()]
    return list(dict.fromkeys(parse_resolver(item) for item in items))


def resolvers_argument(text: str) -> str:
    """A `--resolver` value whose every comma-separated item parses (argparse `type=`)."""
    try:
        parse_resolvers([text])
    except PermanentError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("bad --resolver ")) from None
    return text


def dns_name(text: str) -> str:
    """A host name DNS can carry: labels of 1-63 octets, 255 in all (argparse `type=`)."""
    try:
        dns.name.from_text(text)
    except (dns.exception.DNSException, ValueError, UnicodeError):
        raise argparse.ArgumentTypeError(
            f"is not a valid DNS name (labels of 1-63 characters, 255 in all): {shown(text)}"
        ) from None
    if not text.strip(".") or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError(f"must be a host name without spaces or control characters: {shown(text)}")
    return text


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
            seen = ", ".join(shown(a, quote=False) for a in answers[:5]) + (", …" if len(answers) > 5 else "")
            pending.append(f"{resolver or 'system resolver'} answers {seen or 'nothing'}")
    label = f"{name} {rtype}"
    expected = shown(wanted, quote=False)
    if pending:
        raise TransientError(
            f"{label} is not {expected} yet: {'; '.join(pending)}",
            hint=f"the record has not propagated: check the {rtype} record of {name} points at {expected}",
        )
    elapsed = round(time.monotonic() - started, 3)
    log(f"{label} answers {expected} on {len(resolvers) or 'the system'} resolver(s) after {elapsed}s")
    return {"name": name, "type": rtype, "expect": wanted, "resolvers": [str(r) for r in resolvers], "elapsed_s": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m steps.dns_wait", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, type=dns_name)
    parser.add_argument("--type", default="CNAME", type=str.upper)
    parser.add_argument("--expect", required=True)
    parser.add_argument(
        "--resolver", action="append", type=resolvers_argument, help="ADDR, ADDR:PORT or a comma list; repeatable"
    )
    parser.add_argument("--timeout", type=positive_seconds, default=300.0, help="total seconds to keep trying")
    parser.add_argument("--non-critical", action="store_true", help="warn and skip instead of failing")
    args = parser.parse_args(argv)
    try:
        dns.rdatatype.from_text(args.type)
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        parser.error(f"unknown record type {shown(args.type)}")
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
