"""Deploy step: wait until a URL answers with the expected HTTP status (critical).

`python -m steps.health --url URL [--expect-status N] [--timeout SECONDS]`

GETs the URL until it answers `N` (default 200) or `SECONDS` (default 120) have passed, with the
runtime's backoff. Connection errors, timeouts, 408/425/429/5xx are retried (`Retry-After`
honoured); another status (401/403/404, or a redirect when a 200 is expected) fails at once: a
wrong URL or missing access does not fix itself while we wait. Redirects are followed unless a
3xx is what is expected. Prints `{"url", "status", "elapsed_s"}` on stdout.

Bad arguments (a URL that is not http(s) with a host, a status outside 100-599, a timeout that is
not a positive finite number of seconds) exit 2 with one line before any request is sent.
"""

from __future__ import annotations

import argparse
import sys
import time

import requests

from steps.args import StepParser, http_url, positive_seconds
from steps.retry import http_is_transient
from steps.runtime import PermanentError, TransientError, parse_retry_after, run_step, shown

# One request never takes more than this, so a hung server still leaves time for more attempts.
_REQUEST_TIMEOUT = 10.0


def check(url: str, expect_status: int, request_timeout: float) -> dict:
    """One health probe: the result on the expected status, else a classified error."""
    started = time.monotonic()
    try:
        response = requests.get(
            url, timeout=request_timeout, allow_redirects=not 300 <= expect_status < 400
        )
    except ValueError as exc:  # requests' InvalidURL/MissingSchema/InvalidSchema, urllib3's parse errors
        raise PermanentError(f"GET {shown(url)}: not a URL requests can send ({type(exc).__name__})",
                             hint="pass an http:// or https:// URL with a valid host") from None
    status = response.status_code
    if status == expect_status:
        return {"url": url, "status": status, "elapsed_s": round(time.monotonic() - started, 3)}
    message = f"GET {shown(url, 200, quote=False)} answered {status}, expected {expect_status}"
    if http_is_transient(status):
        raise TransientError(
            message,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            hint="it did not become healthy in time; check the service's logs and re-run the deploy",
        )
    raise PermanentError(message, hint=f"check the URL and that it is public; it answers {status}")


def http_status(text: str) -> int:
    """An HTTP status code, 100-599 (argparse `type=`)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 100 <= value <= 599:
        raise argparse.ArgumentTypeError(f"must be an HTTP status from 100 to 599, not {shown(text)}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m steps.health", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, type=http_url, help="http:// or https:// URL")
    parser.add_argument("--expect-status", type=http_status, default=200)
    parser.add_argument("--timeout", type=positive_seconds, default=120.0, help="total seconds to keep trying")
    args = parser.parse_args(argv)
    request_timeout = min(_REQUEST_TIMEOUT, args.timeout)
    return run_step(
        "health",
        critical=True,
        body=lambda: check(args.url, args.expect_status, request_timeout),
        # The deadline, not a count, bounds a health wait.
        attempts=1000,
        deadline=args.timeout,
        initial_wait=1.0,
        max_wait=10.0,
    )


if __name__ == "__main__":
    sys.exit(main())
