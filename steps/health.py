"""Deploy step: wait until a URL answers with the expected HTTP status (critical).

`python -m steps.health --url URL [--expect-status N] [--timeout SECONDS]`

GETs the URL until it answers `N` (default 200) or `SECONDS` (default 120) have passed, with the
runtime's backoff. Connection errors, timeouts, 408/425/429/5xx are retried (`Retry-After`
honoured); another status (401/403/404, or a redirect when a 200 is expected) fails at once: a
wrong URL or missing access does not fix itself while we wait. Redirects are followed unless a
3xx is what is expected. Prints `{"url", "status", "elapsed_s"}` on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import requests

from steps.retry import http_is_transient
from steps.runtime import PermanentError, TransientError, parse_retry_after, run_step

# One request never takes more than this, so a hung server still leaves time for more attempts.
_REQUEST_TIMEOUT = 10.0


def check(url: str, expect_status: int, request_timeout: float) -> dict:
    """One health probe: the result on the expected status, else a classified error."""
    started = time.monotonic()
    response = requests.get(
        url, timeout=request_timeout, allow_redirects=not 300 <= expect_status < 400
    )
    status = response.status_code
    if status == expect_status:
        return {"url": url, "status": status, "elapsed_s": round(time.monotonic() - started, 3)}
    message = f"GET {url} answered {status}, expected {expect_status}"
    if http_is_transient(status):
        raise TransientError(
            message,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            hint="it did not become healthy in time; check the service's logs and re-run the deploy",
        )
    raise PermanentError(message, hint=f"check the URL and that it is public; it answers {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steps.health", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--expect-status", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=120.0, help="total seconds to keep trying")
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
