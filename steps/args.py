"""Command-line parsing shared by every step: bad arguments give one line and exit 2.

`StepParser` is an `argparse.ArgumentParser` whose errors are one masked line
`<prog>: error: <what>` (no usage block, no traceback, at most a bounded prefix of what was given),
exit code 2 like argparse's own. Sub-parsers inherit it.

Argument types that reject bad input before a step does anything:

- `positive_seconds`: a timeout; a finite number of seconds, above 0 and at most a day. `nan`,
  `inf`, `-1` and `0` never end (or end at once) the waits they bound.
- `http_url`: an absolute `http://` or `https://` URL with a host, as `requests` would send it,
  at most `MAX_URL_LENGTH` characters.
- `matching(pattern, what)`: a name the pattern matches whole (`fullmatch`: no trailing newline).
- `bucket_name`, `artifact_prefix`: where a build publishes (`steps.artifacts`).
- `local_path`: a path the file system can take (no NUL or control characters, at most PATH_MAX
  bytes, no component over NAME_MAX), as a `Path`: a longer one makes every file check raise.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from core import names
from steps.console import mask, shown

# An environment variable's name, as the function's settings (components/settings.py) and the steps
# that name them take it.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# The API's health route (`apiHealthPath`; Pulumi.yaml's default is this one), and what one may be:
# an absolute URL path, no query.
HEALTH_PATH = "/health"
HEALTH_PATH_SHAPE = re.compile(r"/[A-Za-z0-9._~%!$&'()*+,;=:@/-]{0,200}")

# No deploy step waits longer than a day; a bigger value is a typo (or an attempt to hang CI).
MAX_SECONDS = 24 * 3600.0
MAX_URL_LENGTH = 2048
PATH_MAX = 4096
NAME_MAX = 255
ERROR_LIMIT = 300


class StepParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that echo at most a bounded prefix of the input."""

    def error(self, message: str) -> NoReturn:
        print(mask(f"{self.prog}: error: {shown(message, ERROR_LIMIT, quote=False)}"), file=sys.stderr, flush=True)
        self.exit(2)


def positive_seconds(text: str) -> float:
    """A timeout in seconds: finite, > 0, at most MAX_SECONDS (argparse `type=`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {shown(text)}") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be positive and finite, at most {MAX_SECONDS:.0f} seconds (got {shown(text)})"
        )
    return value


def matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    """An argparse `type=` that accepts only values `pattern` matches whole; `what` names them."""

    def check(text: str) -> str:
        if not pattern.fullmatch(text):
            raise argparse.ArgumentTypeError(f"is not {what}: {shown(text)}")
        return text

    return check


# Build outputs' destination (steps.artifacts): a bucket name and a stack's prefix in it.
bucket_name = matching(names.BUCKET_NAME, "an S3 bucket name (a-z, 0-9, '.', '-'; 3 to 63)")
artifact_prefix = matching(names.ARTIFACT_PREFIX, "a stack's artifacts prefix (prod, previews/preview-pr-<N>)")


def local_path(text: str) -> Path:
    """A path every file check can be asked about (argparse `type=`)."""
    if (
        not text
        or any(not c.isprintable() for c in text)
        or len(text.encode("utf-8", "surrogateescape")) > PATH_MAX
        or any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in text.split("/"))
    ):
        raise argparse.ArgumentTypeError(
            f"is not a usable path (printable, at most {PATH_MAX} bytes, {NAME_MAX} per name): {shown(text)}"
        )
    return Path(text)


def http_url(text: str) -> str:
    """An absolute http(s) URL with a host that `requests` accepts (argparse `type=`)."""
    if len(text) > MAX_URL_LENGTH:
        raise argparse.ArgumentTypeError(f"is longer than {MAX_URL_LENGTH} characters: {shown(text)}")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError(f"must not contain spaces or control characters: {shown(text)}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise argparse.ArgumentTypeError(f"is not a valid URL: {shown(text)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL with a host, not {shown(text)}")
    host = parts.hostname
    if ":" not in host and (len(host) > 253 or any(not 0 < len(label) <= 63 for label in host.removesuffix(".").split("."))):
        raise argparse.ArgumentTypeError(f"has a host name that is not valid: {shown(text)}")
    import requests  # here: most steps never parse a URL

    try:
        requests.Request("GET", text).prepare()
    except (requests.RequestException, ValueError, UnicodeError):
        raise argparse.ArgumentTypeError(f"is not a valid URL: {shown(text)}") from None
    return text
