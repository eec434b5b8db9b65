"""Error classification and retry with backoff for the deploy steps (tenacity underneath).

`is_transient(exc)` decides whether an error may go away by itself (retry it) or will not
(fail at once). `retry_call(fn, what=...)` retries transient failures with exponential backoff and
jitter, a maximum attempt count and a total deadline, honours `Retry-After`, and logs every
failed attempt as `<what>: attempt k of n failed: <reason>; next wait Xs`.

`STEPS_RETRY_SCALE` (a float, default 1) multiplies every wait, `Retry-After` included, so tests
can run the real backoff in milliseconds.
"""

from __future__ import annotations

import email.utils
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
import tenacity

from steps.console import log, shown

T = TypeVar("T")

# An error line (log, FAILED line, alert) shows at most this much of its message: an exception
# may carry a whole input or a tool's output.
DESCRIBE_LIMIT = 2000

# Cloudflare API error codes that its own documentation and our runs show to be passing
# (internal error, rate/auth hiccups under load), see docs/facts.md.
CLOUDFLARE_TRANSIENT_CODES = frozenset({10000, 10046, 8000000})

TRANSIENT_HTTP_STATUS = frozenset({408, 425, 429})

AWS_TRANSIENT_CODES = frozenset(
    {
        # Lambda: "An update is in progress for resource" — the classic race after publish.
        "ResourceConflictException",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestLimitExceeded",
        "PriorRequestNotComplete",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "EC2ThrottledException",
    }
)


class TransientError(Exception):
    """A failure that may pass by itself; retried. `retry_after` (seconds) overrides the backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.hint = hint


class PermanentError(Exception):
    """A failure retrying cannot fix (bad credentials, missing resource, invalid input)."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def cloudflare_error_codes(body: Any) -> list[int]:
    """The error codes of a Cloudflare API envelope (`{"success": false, "errors": [...]}`)."""
    if not isinstance(body, Mapping) or body.get("success") is not False:
        return []
    codes = []
    for error in body.get("errors") or []:
        if isinstance(error, Mapping) and isinstance(error.get("code"), int):
            codes.append(error["code"])
    return codes


def json_body(response: requests.Response) -> Any:
    """The response's JSON, or None when it has none (an HTML error page, an empty body)."""
    try:
        return response.json()
    except ValueError:
        return None


def http_is_transient(status: int, body: Any = None) -> bool:
    """Whether an HTTP status (and Cloudflare error body, which wins over the status) is passing."""
    codes = cloudflare_error_codes(body)
    if any(code in CLOUDFLARE_TRANSIENT_CODES for code in codes):
        return True
    return status in TRANSIENT_HTTP_STATUS or status >= 500


def check_response(response: requests.Response, *, what: str) -> requests.Response:
    """Return `response` if it succeeded; else raise TransientError or PermanentError.

    A 2xx whose body is a Cloudflare envelope with `"success": false` is a failure too.
    """
    body = json_body(response)
    codes = cloudflare_error_codes(body)
    if response.ok and not codes:
        return response
    detail = f"HTTP {response.status_code}"
    if codes:
        messages = "; ".join(
            f"{e.get('code')} {e.get('message', '')}".strip()
            for e in body.get("errors", [])
            if isinstance(e, Mapping)
        )
        detail += f" (Cloudflare errors: {messages})"
    message = f"{what}: {detail}"
    if http_is_transient(response.status_code, body):
        raise TransientError(
            message, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )
    raise PermanentError(message)


def aws_error(exc: BaseException) -> tuple[str, str, int] | None:
    """(code, message, HTTP status) of an AWS error, or None when `exc` is not one.

    botocore's ClientError carries a parsed response dict; duck-typed so that steps which never
    touch AWS do not pay for importing botocore.
    """
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping) or "Error" not in response:
        return None
    error = response.get("Error") or {}
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(error.get("Code", "")), str(error.get("Message", "")), status


def _is_instance_of(exc: BaseException, module: str, names: tuple[str, ...]) -> bool:
    # An exception of a library can only exist if that library was imported: look it up in
    # sys.modules instead of importing botocore/psycopg into every step.
    mod = sys.modules.get(module)
    if mod is None:
        return False
    classes = tuple(getattr(mod, n) for n in names if hasattr(mod, n))
    return bool(classes) and isinstance(exc, classes)


def _psycopg_is_transient(exc: BaseException) -> bool | None:
    if not _is_instance_of(exc, "psycopg", ("OperationalError",)):
        return None
    sqlstate = getattr(exc, "sqlstate", None) or ""
    # 28xxx invalid authorization, 3D000 unknown database: a wrong DSN will not fix itself.
    if sqlstate.startswith(("28", "3D")):
        return False
    text = str(exc)
    if "password authentication failed" in text or "does not exist" in text:
        return False
    return True


def is_transient(exc: BaseException) -> bool:
    """True when `exc` may pass by itself and is worth retrying; False for everything else.

    Unknown exception types count as permanent: a bug should fail fast, not retry for minutes.
    """
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return http_is_transient(exc.response.status_code, json_body(exc.response))
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return True
    aws = aws_error(exc)
    if aws is not None:
        code, _, status = aws
        if code in AWS_TRANSIENT_CODES or code.startswith("Throttl"):
            return True
        # AccessDenied*, ValidationException, ResourceNotFoundException and other 4xx codes.
        return status >= 500 and not code.startswith("AccessDenied")
    if _is_instance_of(
        exc,
        "botocore.exceptions",
        ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError"),
    ):
        return True
    psycopg = _psycopg_is_transient(exc)
    if psycopg is not None:
        return psycopg
    return isinstance(exc, (TimeoutError, ConnectionError))


def retry_after_of(exc: BaseException) -> float | None:
    """The server-requested wait carried by `exc` (TransientError or an HTTPError's header)."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)):
        return float(value)
    response = getattr(exc, "response", None)
    if isinstance(response, requests.Response):
        return parse_retry_after(response.headers.get("Retry-After"))
    return None


def describe(exc: BaseException) -> str:
    """One line naming the error: its type and message (bounded, see DESCRIBE_LIMIT)."""
    text = " ".join(str(exc).split()) or "(no message)"
    if not isinstance(exc, (TransientError, PermanentError)):
        text = f"{type(exc).__name__}: {text}"
    return shown(text, DESCRIBE_LIMIT, quote=False)


def _seconds(value: float) -> str:
    # Two decimals below a second so scaled-down test waits stay readable.
    return f"{value:.1f}s" if value >= 1 else f"{value:.2f}s"


def retry_scale() -> float:
    """The factor from `STEPS_RETRY_SCALE` applied to every wait (1 unless set)."""
    raw = os.environ.get("STEPS_RETRY_SCALE", "")
    try:
        return max(0.0, float(raw)) if raw else 1.0
    except ValueError:
        return 1.0


class _Wait(tenacity.wait.wait_base):
    """Exponential backoff with jitter, raised to the server's `Retry-After` when it asks more."""

    def __init__(self, initial: float, maximum: float, scale: float):
        self.backoff = tenacity.wait_exponential_jitter(
            multiplier=initial, max=maximum, jitter=initial
        )
        self.scale = scale

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self.backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = retry_after_of(exc) if exc is not None else None
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait * self.scale


def retry_call(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int = 5,
    deadline: float = 300.0,
    initial_wait: float = 1.0,
    max_wait: float = 30.0,
) -> T:
    """Call `fn()` until it returns, retrying transient errors (see `is_transient`).

    Stops after `attempts` calls, or when the next wait would end past `deadline` seconds from
    the first call; then the last error is raised. A non-transient error is raised at once.
    `Retry-After` is honoured even above `max_wait` (the deadline still bounds it).
    """
    attempts = max(1, attempts)
    attempt = 0

    def attempt_once() -> T:
        nonlocal attempt
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                log(f"{what}: attempt {attempt} of {attempts} failed: {describe(exc)}; not retrying (permanent)")
            raise

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        log(
            f"{what}: attempt {state.attempt_number} of {attempts} failed: {describe(exc)}; "
            f"next wait {_seconds(state.upcoming_sleep)}"
        )

    def give_up(state: tenacity.RetryCallState) -> T:
        exc = state.outcome.exception()
        if state.attempt_number >= attempts:
            why = "no attempts left"
        else:
            why = f"next wait {_seconds(state.upcoming_sleep)} would pass the {_seconds(deadline)} deadline"
        log(f"{what}: attempt {state.attempt_number} of {attempts} failed: {describe(exc)}; giving up ({why})")
        raise exc

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_before_delay(deadline),
        wait=_Wait(initial_wait, max_wait, retry_scale()),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=before_sleep,
        retry_error_callback=give_up,
        reraise=True,
    )
    return retrying(attempt_once)
