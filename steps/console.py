"""What a deploy step may print: secret masking, bounded echo of input, and the stderr log.

Every log line the steps runtime prints goes through `mask`, which replaces the values of the
secret environment variables (and every plausible password of a DSN) with `***`. Logs go to stderr;
stdout is reserved for a step's machine-readable result, because a Pulumi `local.Command`'s stdout
becomes an output other resources read: it is never masked by substring (a one-letter secret would
turn `true` into `***rue`). A result must hold no secret by construction, and the runtime refuses
to print one that does (`secret_in`).

Masking by substring is only safe for secrets long enough not to occur by chance: a step refuses
to start when a secret, or a password inside one, is shorter than `MIN_SECRET_LENGTH`, or when a
DSN's password holds an unencoded `@`, `/`, `?` or `#`, which libpq and Python split differently
(`secret_problems`).

`shown(value)` is how a step echoes what it was given (a flag, an environment value, a name): one
line, control characters escaped, at most a bounded prefix marked with `…`.

Secret variables: `SECRET_ENV_NAMES` plus any name listed in `STEPS_SECRET_ENV` (comma-separated).
Values are read from the environment when masking, never cached at import time.

A step never registers GitHub masks itself: a Command's stdout and stderr are stored in the stack's
state, so an `::add-mask::<secret>` line printed there would write the secret into state. The
workflow registers them once, before `pulumi` runs (`python -m workflow.masks`).

No line a step prints is longer than `LINE_LIMIT` bytes (`bounded_lines`, `emit`; results:
`fit_result`). pulumi-command logs a Command's output through a bufio.Scanner with Go's default
64 KiB token limit: one longer line stops the scanner, nobody reads the pipe any more, and the
Command hangs for good (pulumi-command v1.2.1 provider/pkg/provider/util/util.go LogOutput;
docs/facts.md). A longer line is wrapped into continuation lines (`WRAP_LINES` at most), the rest cut
with a note of how much.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

SECRET_ENV_NAMES: tuple[str, ...] = (
    "DATABASE_URL",
    "RUNTIME_DATABASE_URL",
    "CLOUDFLARE_API_TOKEN",
    "ALERT_WEBHOOK_URL",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PULUMI_CONFIG_PASSPHRASE",
    "GITHUB_TOKEN",
)

MASK = "***"

# Shorter secrets (or passwords inside one) are refused: masked by substring they would mangle
# ordinary words, and unmasked they would be printed.
MIN_SECRET_LENGTH = 8

# How much of a user-given value an error message or log line shows.
SHOWN_LIMIT = 120

# DSN schemes libpq parses itself (and differently from Python when a password is not encoded).
_LIBPQ_SCHEMES = ("postgres", "postgresql")

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


def shown(value: object, limit: int = SHOWN_LIMIT, *, quote: bool = True) -> str:
    """`value` as a step may echo it: one line, at most `limit` characters of it, then `…` and its
    length. Quoted (repr) by default; `quote=False` for text that is already a message (control
    characters are escaped either way, so an echo can never start a line of its own)."""
    text = str(value)
    head = text[:limit]
    head = repr(head) if quote else "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)
    if len(text) > limit:
        head += f"… ({len(text)} characters)"
    return head


def _scheme(value: str) -> str:
    return value.split("://", 1)[0].lower() if "://" in value else ""


def dsn_password_ambiguous(value: str) -> bool:
    """Whether a postgres:// URL has an unencoded `@`, `/`, `?` or `#` in its user or password.

    Python's urlsplit ends the authority at the first `/`, `?` or `#` and the user part at the last
    `@` before it; libpq ends the user part at the first `@`, and reads `?`/`#` in it as part of the
    password. With more than one `@`, or an `@` after the authority, they disagree, a piece of the
    password is taken for a host or a database name, and error messages print it.
    """
    if _scheme(value) not in _LIBPQ_SCHEMES:
        return False
    rest = value.split("://", 1)[1]
    ats = [i for i, c in enumerate(rest) if c == "@"]
    if not ats:
        return False
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return len(ats) > 1 or ats[0] > end


def _libpq_password(value: str) -> str | None:
    """The password as libpq reads it (URL or keyword form), when psycopg is importable."""
    if _scheme(value) not in _LIBPQ_SCHEMES and not re.search(r"\bpassword\s*=", value):
        return None
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - psycopg is a dependency; masking must not need it
        return None
    try:
        return conninfo_to_dict(value).get("password") or None
    except Exception:  # noqa: BLE001 - an unparseable DSN simply has no libpq password
        return None


def _password_candidates(value: str) -> list[str]:
    """Every string a parser might take for the password of a DSN-like secret.

    Python's urlsplit (raw and decoded), libpq's own parse, and for a postgres:// URL each raw
    substring between `://user:` and an `@` (the last `@` included): with an unencoded `@` or `/`
    in the password, each parser ends it somewhere else.
    """
    found: list[str] = []
    if "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
    libpq = _libpq_password(value)
    if libpq:
        found.append(libpq)
    if _scheme(value) in _LIBPQ_SCHEMES:
        rest = value.split("://", 1)[1]
        colon = rest.find(":")
        first_at = rest.find("@")
        if 0 <= colon < first_at:
            for i, c in enumerate(rest):
                if c == "@" and i > colon + 1:
                    found += [rest[colon + 1 : i], unquote(rest[colon + 1 : i])]
    return list(dict.fromkeys(p for p in found if p))


def _url_parts(value: str) -> list[str]:
    if "://" not in value:
        return []
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    found = []
    if len(parts.path) >= _MIN_URL_PART:
        found.append(parts.path)
    if len(parts.query) >= _MIN_URL_PART:
        found.append(parts.query)
    return found


@functools.lru_cache(maxsize=128)
def secret_parts(value: str) -> tuple[str, ...]:
    """`value` and every part of it that may be printed on its own: its lines (a multi-line
    secret), every plausible DSN password (see `_password_candidates`), a URL's long path/query."""
    parts = [value]
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    # A short line of a long key (`-----END ...`, a last base64 row) says nothing on its own.
    parts += [line for line in lines if len(lines) == 1 or len(line) >= MIN_SECRET_LENGTH]
    parts += _password_candidates(value)
    parts += _url_parts(value)
    return tuple(dict.fromkeys(p for p in parts if p))


def _secrets(*envs: Mapping[str, str] | None) -> dict[str, str]:
    """part -> the name of the variable it belongs to, for every secret variable that is set."""
    found: dict[str, str] = {}
    for env in envs or (None,):
        env = os.environ if env is None else env
        for name in secret_names(env):
            value = env.get(name, "")
            if value:
                for part in secret_parts(value):
                    found.setdefault(part, name)
    return found


def secret_values(*envs: Mapping[str, str] | None) -> list[str]:
    """Every string to mask, longest first (so a secret containing another is masked whole)."""
    return sorted(_secrets(*envs), key=len, reverse=True)


def secret_in(text: str, env: Mapping[str, str] | None = None) -> str | None:
    """The name of a secret variable whose value (or a part of it) occurs in `text`, else None."""
    for part, name in sorted(_secrets(env).items(), key=lambda item: len(item[0]), reverse=True):
        if part in text:
            return name
    return None


def _characters(n: int) -> str:
    return f"{n} character" if n == 1 else f"{n} characters"


def secret_problems(env: Mapping[str, str] | None = None) -> list[str]:
    """Why the secrets of `env` cannot be masked safely (one line each); [] when they can.

    Names and lengths only: these lines are printed as they are, since masking cannot be trusted
    while a secret is this short (it would mangle the very message).
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    for name in secret_names(env):
        value = env.get(name, "")
        if not value:
            continue
        if dsn_password_ambiguous(value):
            problems.append(
                f"{name} has an unencoded '@', '/', '?' or '#' in its user or password, which libpq and "
                "other parsers split differently: percent-encode them (%40, %2F, %3F, %23)"
            )
            continue
        if len(value.strip()) < MIN_SECRET_LENGTH:
            problems.append(f"{name} is too short to be masked safely ({_characters(len(value.strip()))}): use a real token")
            continue
        short = [p for p in _password_candidates(value) if len(p) < MIN_SECRET_LENGTH]
        if short:
            problems.append(
                f"the password in {name} is too short to be masked safely ({_characters(min(map(len, short)))}): "
                f"use a password of at least {MIN_SECRET_LENGTH}"
            )
    return problems


def mask(text: str, extra_env: Mapping[str, str] | None = None) -> str:
    """`text` with every secret value (from os.environ and `extra_env`) and DSN password masked."""
    for value in secret_values(None, extra_env or {}):
        text = text.replace(value, MASK)
    return _DSN_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)


# Far below the 64 KiB that hangs pulumi-command, with room for a prefix the engine adds.
LINE_LIMIT = 16 * 1024
# Continuation lines a long line may take before the rest is cut.
WRAP_LINES = 4
CONTINUED = "  ↳ "


def _cut(text: str, limit: int) -> tuple[str, str]:
    """The longest prefix of `text` of at most `limit` bytes of UTF-8 (never half a character), and the rest."""
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) <= limit:
        return text, ""
    head = encoded[:limit].decode("utf-8", "ignore")
    return head, text[len(head):]


def bounded_lines(text: str, limit: int = LINE_LIMIT) -> list[str]:
    """`text` as lines of at most `limit` bytes each: a longer line goes on in up to `WRAP_LINES`
    continuation lines, and what is left after them is cut with a note of its size."""
    out: list[str] = []
    for line in text.split("\n"):
        head, rest = _cut(line, limit)
        out.append(head)
        for _ in range(WRAP_LINES):
            if not rest:
                break
            head, rest = _cut(rest, limit - len(CONTINUED.encode()))
            out.append(CONTINUED + head)
        if rest:
            size = len(rest.encode("utf-8", "surrogateescape"))
            out.append(f"{CONTINUED}… ({size} more bytes of this line cut: no step prints a line over {limit} bytes)")
    return out


def emit(text: str, stream=None) -> None:
    """Print `text` (already masked) to `stream` (stderr), every line bounded (`bounded_lines`)."""
    stream = sys.stderr if stream is None else stream
    print("\n".join(bounded_lines(text)), file=stream, flush=True)


def fit_result(value: object, limit: int = LINE_LIMIT) -> str:
    """A step's result as one JSON line of at most `limit` bytes: lists are shortened (their first
    items, then `"… N more"`) until it fits, then long strings; what other resources read (ids,
    hashes, records) is scalar and short, and stays whole."""
    text = json.dumps(value, default=str)
    keep = 64
    while len(text.encode()) > limit and keep >= 1:
        text = json.dumps(_shortened(value, keep, None), default=str)
        keep //= 2
    width = 1024
    while len(text.encode()) > limit and width >= 16:
        text = json.dumps(_shortened(value, 1, width), default=str)
        width //= 2
    return text if len(text.encode()) <= limit else json.dumps({"result": "too long to print", "bytes": len(text.encode())})


def _shortened(value: object, keep: int, width: int | None) -> object:
    if isinstance(value, dict):
        return {key: _shortened(item, keep, width) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_shortened(item, keep, width) for item in value[:keep]]
        return items + ([f"… {len(value) - keep} more"] if len(value) > keep else [])
    if isinstance(value, str) and width is not None and len(value) > width:
        return shown(value, width, quote=False)
    return value


def log(msg: str) -> None:
    """Print one masked log line to stderr (wrapped or cut below `LINE_LIMIT`)."""
    emit(mask(msg))


def warn(msg: str) -> None:
    """Print one masked warning line to stderr."""
    log(f"warning: {msg}")


def in_github_actions(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("GITHUB_ACTIONS") == "true"
