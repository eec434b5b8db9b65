"""What a deploy step may print: secret masking and the stderr log.

Every line the steps runtime prints goes through `mask`, which replaces the values of the secret
environment variables (and the password of any URL-style DSN) with `***`. Logs go to stderr;
stdout is reserved for a step's machine-readable JSON result, because a Pulumi `local.Command`'s
stdout becomes an output other resources read.

Secret variables: `SECRET_ENV_NAMES` plus any name listed in `STEPS_SECRET_ENV` (comma-separated).
Values are read from the environment when masking, never cached at import time.

A step never registers GitHub masks itself: a Command's stdout and stderr are stored in the stack's
state, so an `::add-mask::<secret>` line printed there would write the secret into state. The
workflow registers them once, before `pulumi` runs (`python -m workflow.masks`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

SECRET_ENV_NAMES: tuple[str, ...] = (
    "DATABASE_URL",
    "CLOUDFLARE_API_TOKEN",
    "ALERT_WEBHOOK_URL",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PULUMI_CONFIG_PASSPHRASE",
    "GITHUB_TOKEN",
)

MASK = "***"

# scheme://user:password@host — the password is masked even when the DSN is not one of the
# known secret variables (a tool may echo a connection string it built itself).
_DSN_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)(?P<at>@)")

# A webhook URL's secret is its path (Slack: /services/T../B../token); a connection error message
# prints host and path apart, so the path is masked on its own — but only when long enough not to
# be a database name like "/app".
_MIN_URL_PART = 12


def secret_names(env: Mapping[str, str] | None = None) -> list[str]:
    """The names of the environment variables whose values must never be printed."""
    env = os.environ if env is None else env
    extra = [n.strip() for n in env.get("STEPS_SECRET_ENV", "").split(",") if n.strip()]
    return list(dict.fromkeys([*SECRET_ENV_NAMES, *extra]))


def _url_parts(value: str) -> list[str]:
    if "://" not in value:
        return []
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return []
    found = []
    if password:
        found += [password, unquote(password)]
    if len(parts.path) >= _MIN_URL_PART:
        found.append(parts.path)
    if len(parts.query) >= _MIN_URL_PART:
        found.append(parts.query)
    return found


def secret_values(*envs: Mapping[str, str] | None) -> list[str]:
    """Every string to mask, longest first (so a secret containing another is masked whole)."""
    values: set[str] = set()
    for env in envs or (None,):
        env = os.environ if env is None else env
        for name in secret_names(env):
            value = env.get(name, "")
            if not value:
                continue
            values.add(value)
            values.update(line for line in value.splitlines() if line.strip())
            values.update(_url_parts(value))
    values.discard("")
    return sorted(values, key=len, reverse=True)


def mask(text: str, extra_env: Mapping[str, str] | None = None) -> str:
    """`text` with every secret value (from os.environ and `extra_env`) and DSN password masked."""
    for value in secret_values(None, extra_env or {}):
        text = text.replace(value, MASK)
    return _DSN_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)


def log(msg: str) -> None:
    """Print one masked log line to stderr."""
    print(mask(msg), file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    """Print one masked warning line to stderr."""
    log(f"warning: {msg}")


def in_github_actions(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("GITHUB_ACTIONS") == "true"
