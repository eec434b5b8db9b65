"""What @actions/core gives an action, for the local stand-ins (the file commands GitHub's runner
and act both read; toolkit packages/core/src/core.ts and file-command.ts, @actions/core 1.10).

Inputs come as `INPUT_<NAME>` (upper-cased, spaces as `_`), as the runner sets them for a node
action; outputs, exported variables, PATH entries and saved state go to the files named by
GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STATE (`name<<delimiter` blocks); masks and
annotations are `::` commands on stdout; a post step reads its state as `STATE_<name>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path


class ActionFailed(Exception):
    """`core.setFailed`: the message becomes an ::error:: and the step exits 1."""


def get_input(name: str, *, required: bool = False, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    value = env.get(f"INPUT_{name.replace(' ', '_').upper()}", "").strip()
    if required and not value:
        raise ActionFailed(f"Input required and not supplied: {name}")
    return value


def get_multiline_input(name: str, *, required: bool = False) -> list[str]:
    return [line.strip() for line in get_input(name, required=required).split("\n") if line.strip()]


def get_bool_input(name: str, default: bool = False) -> bool:
    value = get_input(name)
    if not value:
        return default
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    raise ActionFailed(
        f"Input does not meet YAML 1.2 \"Core Schema\" specification: {name}\n"
        "Support boolean input list: `true | True | TRUE | false | False | FALSE`"
    )


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str) -> None:
    props = ",".join(f"{k}={_escape_property(str(v))}" for k, v in properties.items() if v)
    print(f"::{name}{' ' + props if props else ''}::{_escape_data(message)}", flush=True)


def info(message: str) -> None:
    print(message, flush=True)


def warning(message: str, **properties: str) -> None:
    command("warning", message, **properties)


def error(message: str, **properties: str) -> None:
    command("error", message, **properties)


def set_secret(value: str) -> None:
    if value:
        command("add-mask", value)


def _file_command(variable: str, key: str, value: str) -> None:
    path = os.environ.get(variable)
    if not path:
        raise ActionFailed(f"Unable to find environment variable for file command {variable}")
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    if delimiter in key or delimiter in value:
        raise ActionFailed(f"Unexpected input: name should not contain the delimiter {delimiter}")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")


def set_output(name: str, value: object) -> None:
    _file_command("GITHUB_OUTPUT", name, value if isinstance(value, str) else json.dumps(value))


def export_variable(name: str, value: str) -> None:
    os.environ[name] = value
    _file_command("GITHUB_ENV", name, value)


def save_state(name: str, value: object) -> None:
    _file_command("GITHUB_STATE", name, value if isinstance(value, str) else json.dumps(value))


def get_state(name: str) -> str:
    return os.environ.get(f"STATE_{name}", "")


def add_path(directory: str | Path) -> None:
    path = os.environ.get("GITHUB_PATH")
    if not path:
        raise ActionFailed("Unable to find environment variable for file command GITHUB_PATH")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{directory}\n")
    os.environ["PATH"] = f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"


def workspace() -> Path:
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())


def runner_setting(name: str) -> str:
    """A setting of the local runner's machine (sandbox/workflow_runner.py sets them for every job)."""
    value = os.environ.get(name)
    if not value:
        raise ActionFailed(f"{name} is not set: this stand-in runs under sandbox/workflow_runner.py only")
    return value


def hash_files(patterns: Iterable[str], root: Path) -> str:
    """@actions/glob hashFiles: the sha256 over each matched file's sha256, files under `root` only
    ('' when none matched). Patterns are relative to root; `!pattern` excludes."""
    include = [p for p in patterns if p and not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    files: set[Path] = set()
    for pattern in include:
        files |= {p for p in root.glob(pattern) if p.is_file()}
    for pattern in exclude:
        files -= {p for p in root.glob(pattern)}
    if not files:
        return ""
    total = hashlib.sha256()
    for path in sorted(files):
        total.update(hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def run(main) -> None:  # noqa: ANN001 - any callable of no arguments
    """Run an action's entry point as @actions/core does: a failure is one ::error:: and exit 1."""
    try:
        main()
    except ActionFailed as exc:
        error(str(exc))
        sys.exit(1)


def lines(text: str) -> Iterator[str]:
    return (line.strip() for line in text.split("\n") if line.strip())
