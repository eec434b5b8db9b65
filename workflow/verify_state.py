"""Refuse to destroy a PR stack whose state says to run what this checkout's program does not declare.

    pulumi stack export --stack "$STACK" --file "$RUNNER_TEMP/state.json"
    python -m workflow.verify_state --stack "$STACK" --state "$RUNNER_TEMP/state.json"

`pulumi destroy` does not run the program: it runs each Command's `delete` with the command text,
interpreter, directory and environment stored in the stack's state, and loads the providers the
state names (docs/facts.md). A PR's state file is written with the preview role, which every pull request
holds, so a PR can plant a state for any `preview-pr-<N>`, whose stored `delete` is arbitrary shell.
The sweeper runs on `main`, daily; this check stands between such a file and `pulumi destroy`.

The program of this checkout is evaluated offline for the stack (`tools.offline`: the real
`__main__.py` under the recording mocks, the stack's committed settings) and the state must agree:

- every resource's URN is one the program declares (its engine form: the parents' types joined by
  `$`), and its `type` is the URN's; declared resources may be missing (a partial `up`), none may be
  added;
- every Command (in `inputs` and in `outputs`: the command provider runs `delete` from the stored
  outputs) has the declared `create`, `delete`, `update`, `dir`, `interpreter` and `stdin`, and the
  declared environment NAMES; the values may differ (content hashes, URLs of other resources),
  except for variables that choose what code runs (PATH, PYTHONPATH, LD_PRELOAD, ...), which must
  be the declared values;
- a provider is one of the packages the program uses (a default provider, or the program's own),
  with no download URL or endpoint the program does not declare: a planted `pluginDownloadURL`
  would make the engine fetch and run a binary of the author's choosing;
- pending operations and resources pending deletion are checked like the rest.

Anything else (an unreadable file, a secret where a plain command is expected) is a difference too.
On a difference the stack is left alone: the problems are printed (each echo bounded and quoted),
a critical alert is sent (`steps.alert.send_alert`) and the exit status is 1, so the workflow never
reaches `pulumi destroy` for that stack. 0: the state is what the program declares. 2: bad usage.

Prints `{"stack", "verified", "resources", "commands", "missing", "problems"}` on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.names import PR_NUMBER, PR_STACK
from steps.console import log, shown
from tools.offline import SIGNATURE_KEY, committed_values, config_for, run_program

STACK_TYPE = "pulumi:pulumi:Stack"
COMMAND_TYPE = "command:local:Command"
PROVIDER_PREFIX = "pulumi:providers:"
# What a Command runs and how: compared exactly. `environment` is compared by its names.
COMMAND_FIELDS = ("create", "delete", "update", "dir", "interpreter", "stdin")
# Variables whose value decides which code a shell, Python, Node or the dynamic loader runs.
CODE_PATH_VARIABLES = re.compile(
    r"PATH|LD_\w+|DYLD_\w+|PYTHON\w*|NODE_OPTIONS|NODE_PATH|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|IFS|PERL5\w+|RUBY\w+"
)
# Provider inputs that send the provider (and its credentials) somewhere or fetch a plugin.
REDIRECTING_KEY = re.compile(r"(?i).*(url|endpoint|plugin).*")
DEFAULT_PROVIDER_NAME = re.compile(r"default(_[0-9A-Za-z_.-]+)?")
# No database is reached: the settings want a URL, and no Command carries it.
PLACEHOLDER_DATABASE_URL = "postgres://verify:not-used@127.0.0.1:5432/verify"


@dataclass(frozen=True)
class DeclaredCommand:
    fields: dict[str, Any]
    environment: dict[str, Any]


@dataclass
class Declaration:
    """What the program declares for one stack, by engine URN."""

    stack: str
    project: str
    types: dict[str, str] = field(default_factory=dict)
    commands: dict[str, DeclaredCommand] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stack_urn(self) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{STACK_TYPE}::{self.project}-{self.stack}"

    @property
    def packages(self) -> set[str]:
        """The provider packages the program's resources need (`aws`, `cloudflare`, `command`)."""
        found = set()
        for type_token in self.types.values():
            if type_token.startswith(PROVIDER_PREFIX):
                found.add(type_token.removeprefix(PROVIDER_PREFIX))
            elif not type_token.startswith(f"{self.project}:"):
                found.add(type_token.split(":", 1)[0])
        return found


def engine_urns(recording) -> dict[str, str]:
    """Mock URN -> the URN the engine gives the same resource.

    The engine qualifies a type with every ancestor's type (`Phase$PagesSite$command:local:Command`),
    the mocks with the parent's only; both leave the Stack out.
    """
    project = "webstack"
    urns = {}
    for urn, resource in recording.resources.items():
        project = urn.split("::")[1]
        chain = [resource.type]
        parent = recording.resources.get(resource.parent)
        while parent is not None:
            chain.insert(0, parent.type)
            parent = recording.resources.get(parent.parent)
        urns[urn] = f"urn:pulumi:{recording.stack}::{project}::{'$'.join(chain)}::{resource.name}"
    return urns


def declaration_of(recording) -> Declaration:
    urns = engine_urns(recording)
    project = next(iter(urns.values())).split("::")[1] if urns else "webstack"
    declared = Declaration(stack=recording.stack, project=project)
    for mock_urn, resource in recording.resources.items():
        urn = urns[mock_urn]
        declared.types[urn] = resource.type
        if resource.type == COMMAND_TYPE:
            inputs = resource.inputs
            declared.commands[urn] = DeclaredCommand(
                fields={name: inputs.get(name) for name in COMMAND_FIELDS},
                environment=dict(inputs.get("environment") or {}),
            )
        elif resource.type.startswith(PROVIDER_PREFIX):
            declared.providers[urn] = dict(resource.inputs)
    return declared


def recording_for(stack: str):
    """This checkout's program evaluated offline for `stack` with its committed settings."""
    config = config_for(stack, committed_values(stack))
    # The settings need a database URL; no Command carries it (steps read it from the job's env).
    config["webstack:databaseUrl"] = PLACEHOLDER_DATABASE_URL
    return run_program(stack, config, secret_keys=("webstack:databaseUrl",))


def declared_for(stack: str) -> Declaration:
    return declaration_of(recording_for(stack))


# --- the comparison ----------------------------------------------------------------------------------


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and SIGNATURE_KEY in value


def _absent(value: Any) -> bool:
    return value is None or value == "" or value == []


def _same(declared: Any, stored: Any) -> bool:
    return (_absent(declared) and _absent(stored)) or declared == stored


def _type_of(urn: str) -> str:
    """The resource's own type: the last `$` segment of the URN's qualified type."""
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) >= 4 else ""


def _redirecting_keys(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if REDIRECTING_KEY.fullmatch(str(key)):
                yield where, item
            else:
                yield from _redirecting_keys(item, where)


def _lookup(document: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document


def check_command(where: str, resource: Mapping[str, Any], declared: DeclaredCommand) -> Iterator[str]:
    for part in ("inputs", "outputs"):
        stored = resource.get(part)
        if stored is None and part == "outputs":
            continue  # a pending create has no outputs yet
        if not isinstance(stored, Mapping):
            yield f"{where}: {part} is not an object"
            continue
        for name in COMMAND_FIELDS:
            value = stored.get(name)
            if _is_secret(value):
                yield f"{where}: {part}.{name} is encrypted, so it cannot be checked (the program declares it in plain text)"
            elif not _same(declared.fields[name], value):
                yield (
                    f"{where}: {part}.{name} is {shown(value)}, the program declares "
                    f"{shown(declared.fields[name])}"
                )
        environment = stored.get("environment")
        if _is_secret(environment):
            yield f"{where}: {part}.environment is encrypted, so its names cannot be checked"
            continue
        if environment is not None and not isinstance(environment, Mapping):
            yield f"{where}: {part}.environment is not an object"
            continue
        names = set(environment or {})
        if names != set(declared.environment):
            added = sorted(names - set(declared.environment))
            removed = sorted(set(declared.environment) - names)
            yield (
                f"{where}: {part}.environment names differ from the program's"
                + (f"; not declared: {shown(', '.join(added))}" if added else "")
                + (f"; missing: {shown(', '.join(removed))}" if removed else "")
            )
        for name in sorted(names & set(declared.environment)):
            if CODE_PATH_VARIABLES.fullmatch(name) and environment[name] != declared.environment[name]:
                yield (
                    f"{where}: {part}.environment.{name} is {shown(environment[name])}; it decides what code "
                    f"runs, so it must be the declared {shown(declared.environment[name])}"
                )


def check_provider(where: str, urn: str, resource: Mapping[str, Any], declared: Declaration) -> Iterator[str]:
    package = _type_of(urn).removeprefix(PROVIDER_PREFIX)
    if package not in declared.packages:
        yield f"{where}: a provider of package {shown(package)}, which the program does not use"
        return
    inputs = resource.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        yield f"{where}: inputs is not an object"
        return
    own = declared.providers.get(urn)
    if own is None:
        name = urn.rsplit("::", 1)[-1]
        if not DEFAULT_PROVIDER_NAME.fullmatch(name):
            yield f"{where}: a provider the program does not declare (only default providers and its own are)"
        extra = sorted(set(inputs) - {"version", "__internal"})
        if extra:
            yield f"{where}: a default provider carries settings the stack has none of: {shown(', '.join(extra))}"
    for part in ("inputs", "outputs"):
        for key, value in _redirecting_keys(resource.get(part) or {}):
            if value in (None, "", {}, []):
                continue
            expected = _lookup(own, key) if own is not None else None
            if value != expected:
                yield f"{where}: {part}.{key} is {shown(value)}; the program declares {shown(expected)}"


def check_resource(resource: Any, declared: Declaration, label: str = "") -> Iterator[str]:
    if not isinstance(resource, Mapping):
        yield f"{label or 'a resource'} is not an object"
        return
    urn = resource.get("urn")
    type_token = resource.get("type")
    where = f"{label}{shown(urn)}"
    if not isinstance(urn, str) or not isinstance(type_token, str):
        yield f"{where}: no urn or type"
        return
    if _type_of(urn) != type_token:
        yield f"{where}: type {shown(type_token)} is not the URN's"
        return
    if type_token == STACK_TYPE:
        if urn != declared.stack_urn:
            yield f"{where}: not this stack's root (expected {shown(declared.stack_urn)})"
        return
    if type_token.startswith(PROVIDER_PREFIX):
        if not urn.startswith(f"urn:pulumi:{declared.stack}::{declared.project}::"):
            yield f"{where}: a provider of another stack or project"
            return
        yield from check_provider(where, urn, resource, declared)
        return
    if urn not in declared.types:
        kind = "a Command" if type_token == COMMAND_TYPE else "a resource"
        yield f"{where}: {kind} the program does not declare"
        return
    provider = resource.get("provider")
    if provider and not str(provider).startswith(f"urn:pulumi:{declared.stack}::{declared.project}::{PROVIDER_PREFIX}"):
        yield f"{where}: its provider {shown(provider)} is not one of this stack's"
    if type_token == COMMAND_TYPE:
        yield from check_command(where, resource, declared.commands[urn])


def state_resources(document: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    """Every resource entry of a `pulumi stack export` document, labelled; and shape problems."""
    if not isinstance(document, Mapping) or not isinstance(document.get("deployment"), Mapping):
        return [], ["not a `pulumi stack export` document (no `deployment` object)"]
    problems = []
    if document.get("version") != 3:
        problems.append(f"export format version {shown(document.get('version'))}, expected 3")
    deployment = document["deployment"]
    # An empty stack's export has no `resources` (None); anything else must be a list.
    resources = deployment.get("resources")
    resources = [] if resources is None else resources
    pending = deployment.get("pending_operations")
    pending = [] if pending is None else pending
    if not isinstance(resources, list) or not isinstance(pending, list):
        return [], [*problems, "`deployment.resources` and `deployment.pending_operations` must be lists"]
    entries: list[tuple[str, Any]] = [("", r) for r in resources]
    for operation in pending:
        kind = operation.get("type") if isinstance(operation, Mapping) else None
        entries.append((f"pending {shown(kind)} of ", operation.get("resource") if isinstance(operation, Mapping) else operation))
    return entries, problems


def verify(document: Any, declared: Declaration) -> dict[str, Any]:
    """The verdict on one exported state: problems (empty when it may be destroyed) and counts."""
    entries, problems = state_resources(document)
    present = set()
    commands = 0
    for label, resource in entries:
        problems += check_resource(resource, declared, label)
        if isinstance(resource, Mapping):
            present.add(resource.get("urn"))
            commands += resource.get("type") == COMMAND_TYPE
    missing = sorted(urn for urn in declared.commands if urn not in present)
    return {
        "stack": declared.stack,
        "verified": not problems,
        "resources": len(entries),
        "commands": commands,
        # Allowed: a preview whose first `up` failed half-way has fewer Commands than declared.
        "missing": [urn.rsplit("::", 1)[-1] for urn in missing],
        "problems": problems,
    }


# --- the CLI -------------------------------------------------------------------------------------------


def _read(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"cannot read the exported state {shown(str(path))}: {type(exc).__name__}: {shown(str(exc), quote=False)}"


def report(verdict: Mapping[str, Any]) -> str:
    lines = [f"### State check of `{verdict['stack']}`", ""]
    if verdict["verified"]:
        lines.append(f"The state matches the program ({verdict['commands']} Commands, {verdict['resources']} resources).")
    else:
        lines.append("**Refused**: the stored state differs from what the program declares; it was not destroyed.")
        lines.append("")
        lines += [f"- {problem}" for problem in verdict["problems"][:50]]
        if len(verdict["problems"]) > 50:
            lines.append(f"- … and {len(verdict['problems']) - 50} more")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, declare=declared_for) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m workflow.verify_state", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="preview-pr-<N>")
    parser.add_argument("--state", required=True, type=Path, help="`pulumi stack export` output")
    args = parser.parse_args(argv)
    match = PR_STACK.fullmatch(args.stack)
    if not match or not PR_NUMBER.fullmatch(match["number"]):
        print(f"verify_state: {shown(args.stack)} is not a PR stack (preview-pr-<N>)", file=sys.stderr)
        return 2

    document, unreadable = _read(args.state)
    if unreadable:
        verdict = {"stack": args.stack, "verified": False, "resources": 0, "commands": 0, "missing": [], "problems": [unreadable]}
    else:
        verdict = verify(document, declare(args.stack))
    print(json.dumps(verdict), flush=True)

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(report(verdict))
    if verdict["verified"]:
        log(f"verify_state: {args.stack}: the state matches the program; it may be destroyed")
        return 0
    for problem in verdict["problems"]:
        log(f"verify_state: {problem}")
    from steps.alert import send_alert

    body = report(verdict)
    send_alert(
        "critical",
        f"{args.stack} not destroyed: its state declares what the program does not",
        body[:3500],
    )
    log(
        f"verify_state: {args.stack} was left alone. Read its state (`pulumi stack export --stack {args.stack}`); "
        "if it is harmless, destroy it by hand, else remove the foreign resources first (`pulumi state delete URN`)"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
