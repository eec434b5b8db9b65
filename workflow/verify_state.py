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
- every Command field the command provider acts on is on an allow-list: the fields above, plus
  `logging`, `addPreviousOutputInEnv`, `assetPaths` and `archivePaths` as declared, `triggers`
  (any value) and the outputs it writes itself (`stdout`, `stderr`, `assets`, `archive`); any other
  field is refused;
- a provider is exactly one the program declares: its explicit provider, or the default provider
  the engine makes for a package from the version the SDK asks (`default_<major>_<minor>_<patch>`).
  Everything the engine reads from a provider's state to choose, fetch and configure a plugin
  (pkg/resource/deploy/providers/registry.go, v3.274.1: `Same` reads `name`, `version`,
  `pluginDownloadURL`, `parameterization` and `envVarMappings` from `__internal`, or from the top
  level when `__internal` is missing, and hands every other input to CheckConfig/Configure) must be
  what the program declares, key for key: no `__internal` field the SDK did not send, the declared
  plugin version, no setting the program does not make. A planted plugin name, version, download
  URL or parameterization would make the engine load and run a plugin of the author's choosing;
- every resource names, as its `provider`, the provider the program gives it;
- a cloud resource (AWS, Cloudflare) stores every input the program declares with a plain value
  unchanged, in its inputs and outputs (a name, zone or account is what its provider's Delete acts
  on); an input wired from another resource's output must be one of that resource's stored outputs;
  an input the program does not declare is allowed only where the provider fills it in itself
  (`PROVIDER_FILLED`: schema defaults, which must keep their default value, auto-names, hashes);
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
from workflow import json_input
from tools.offline import SIGNATURE_KEY, committed_values, config_for, file_values, run_program

STACK_TYPE = "pulumi:pulumi:Stack"
COMMAND_TYPE = "command:local:Command"
PROVIDER_PREFIX = "pulumi:providers:"
# What a Command runs and how: compared exactly. `environment` is compared by its names.
COMMAND_FIELDS = ("create", "delete", "update", "dir", "interpreter", "stdin")
# Variables whose value decides which code a shell, Python, Node or the dynamic loader runs.
CODE_PATH_VARIABLES = re.compile(
    r"PATH|LD_\w+|DYLD_\w+|PYTHON\w*|NODE_OPTIONS|NODE_PATH|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|IFS|PERL5\w+|RUBY\w+"
)
# Command fields besides COMMAND_FIELDS and `environment`: declared ones compared exactly, the
# provider's own outputs and the re-run triggers accepted with any value.
COMMAND_DECLARED_FIELDS = ("logging", "addPreviousOutputInEnv", "assetPaths", "archivePaths")
COMMAND_FREE_FIELDS = {"inputs": ("triggers",), "outputs": ("triggers", "stdout", "stderr", "assets", "archive")}
INTERNAL = "__internal"
ANY = object()
# Inputs a provider's Check fills in that the program never declares (what sandbox/providers mirror
# of pulumi-aws 7 and pulumi-cloudflare 6): a default must keep its value, since some decide what
# Delete does (`forceDetachPolicies`, `skipDestroy`); auto-names and hashes may hold any value.
PROVIDER_FILLED: dict[str, dict[str, Any]] = {
    "aws:iam/role:Role": {"path": "/", "maxSessionDuration": 3600, "forceDetachPolicies": False},
    "aws:lambda/function:Function": {
        "packageType": "Zip", "publish": False, "memorySize": 128, "timeout": 3, "architectures": ["x86_64"],
        "reservedConcurrentExecutions": -1, "skipDestroy": False, "sourceCodeHash": ANY,
    },
    "aws:lambda/functionUrl:FunctionUrl": {"invokeMode": "BUFFERED"},
    "aws:lambda/permission:Permission": {"statementId": ANY},
}  # fmt: skip
# The bridge records which inputs it defaulted; the list itself decides nothing.
FILLED_EVERYWHERE = {"__defaults": ANY}
# No database is reached: the settings want a URL, and no Command carries it.
PLACEHOLDER_DATABASE_URL = "postgres://verify:not-used@127.0.0.1:5432/verify"


@dataclass(frozen=True)
class DeclaredCommand:
    fields: dict[str, Any]
    environment: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    """COMMAND_DECLARED_FIELDS as declared (absent: not set)."""


@dataclass(frozen=True)
class DeclaredResource:
    type: str
    inputs: dict[str, Any]
    wired: dict[str, set[str]]
    """Input name -> engine URNs of the resources its value comes from (empty: a plain value)."""
    secret_inputs: set[str]


@dataclass
class Declaration:
    """What the program declares for one stack, by engine URN."""

    stack: str
    project: str
    types: dict[str, str] = field(default_factory=dict)
    commands: dict[str, DeclaredCommand] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Provider URN -> the inputs the engine stores for it: explicit ones' and default ones'."""
    resources: dict[str, DeclaredResource] = field(default_factory=dict)
    provider_of: dict[str, str] = field(default_factory=dict)
    """Custom resource URN -> the URN of the provider the program gives it."""

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


def default_provider_name(version: str, download_url: str = "") -> str:
    """The name the engine gives the default provider of a plugin version (ProviderRequest.DefaultName,
    pkg/resource/deploy/providers/provider.go, v3.274.1); only versions the SDKs send are handled."""
    core, _, pre = version.partition("-")
    core, _, build = core.partition("+")
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"an SDK asked for plugin version {version!r}, which is not major.minor.patch")
    name = "default_" + "_".join(str(int(p)) for p in parts)
    name += "".join(f"_{p}" for p in pre.split(".") if p) + "".join(f"_{p}" for p in build.split(".") if p)
    if download_url:
        raise ValueError(f"an SDK asks for a plugin download URL ({download_url!r}); verify_state does not allow one")
    return name


def _provider_inputs(declared_inputs: Mapping[str, Any], version: str) -> dict[str, Any]:
    """What the engine stores as a provider's inputs: the settings, the plugin version, `__internal`
    (SetProviderVersion adds it empty; nothing else is set without a download URL or a package)."""
    return {**declared_inputs, "version": version, INTERNAL: {}}


def declaration_of(recording) -> Declaration:
    urns = engine_urns(recording)
    project = next(iter(urns.values())).split("::")[1] if urns else "webstack"
    declared = Declaration(stack=recording.stack, project=project)
    prefix = f"urn:pulumi:{recording.stack}::{project}::"
    for mock_urn, resource in recording.resources.items():
        urn = urns[mock_urn]
        declared.types[urn] = resource.type
        if resource.package_ref:
            raise ValueError(f"{resource.name} uses a parameterized package ({resource.package_ref}); verify_state does not allow one")
        if resource.type.startswith(PROVIDER_PREFIX):
            if resource.plugin_download_url:
                raise ValueError(f"provider {resource.name} declares a plugin download URL; verify_state does not allow one")
            declared.providers[urn] = _provider_inputs(resource.inputs, resource.version)
            continue
        if not resource.custom:
            continue
        if resource.provider:
            declared.provider_of[urn] = urns.get(resource.provider.rsplit("::", 1)[0], "")
        else:
            package = resource.type.split(":", 1)[0]
            provider = f"{prefix}{PROVIDER_PREFIX}{package}::{default_provider_name(resource.version, resource.plugin_download_url)}"
            declared.provider_of[urn] = provider
            declared.providers.setdefault(provider, _provider_inputs({}, resource.version))
            declared.types.setdefault(provider, f"{PROVIDER_PREFIX}{package}")
        declared.resources[urn] = DeclaredResource(
            type=resource.type,
            inputs=dict(resource.inputs),
            wired={key: {urns[d] for d in deps if d in urns} for key, deps in resource.property_dependencies.items() if deps},
            secret_inputs=set(resource.secret_inputs),
        )
        if resource.type == COMMAND_TYPE:
            inputs = resource.inputs
            declared.commands[urn] = DeclaredCommand(
                fields={name: inputs.get(name) for name in COMMAND_FIELDS},
                environment=dict(inputs.get("environment") or {}),
                options={name: inputs[name] for name in COMMAND_DECLARED_FIELDS if name in inputs},
            )
    return declared


def recording_for(stack: str, config_file: Path | None = None):
    """This checkout's program evaluated offline for `stack` with its committed settings, or with the
    settings of `config_file` (what `pulumi --config-file` hands the stack; a PR stack runs on
    Pulumi.preview.yaml)."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"the stack config file {config_file} does not exist")
    values = file_values(config_file) if config_file is not None else committed_values(stack)
    config = config_for(stack, values)
    # The settings need a database URL; no Command carries it (steps read it from the job's env).
    config["webstack:databaseUrl"] = PLACEHOLDER_DATABASE_URL
    return run_program(stack, config, secret_keys=("webstack:databaseUrl",))


def declared_for(stack: str, config_file: Path | None = None) -> Declaration:
    return declaration_of(recording_for(stack, config_file))


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


def _strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        # A build prints its record as one JSON line (`steps.artifacts`); the program takes the
        # function's `s3Bucket`/`s3Key`/`s3ObjectVersion` from its fields.
        if value.startswith("{"):
            try:
                document = json_input.loads(value, "a build's record")
            except json_input.JsonInputError:
                return  # not a record (or nested past the bound): no field of it counts
            if isinstance(document, Mapping):
                yield from _strings_in(document)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)


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
        for name in COMMAND_DECLARED_FIELDS:
            value = stored.get(name)
            if _is_secret(value) or not _same(declared.options.get(name), value):
                yield f"{where}: {part}.{name} is {shown(value)}, the program declares {shown(declared.options.get(name))}"
        known = {*COMMAND_FIELDS, "environment", *COMMAND_DECLARED_FIELDS, *COMMAND_FREE_FIELDS[part]}
        for name in sorted(set(stored) - known, key=str):
            yield f"{where}: {part}.{name} is not a field the program sets (the command provider would act on it)"


# What each `__internal` field makes the engine do (pkg/resource/deploy/providers/registry.go).
INTERNAL_FIELDS = {
    "name": "load the plugin of that name instead of the package's",
    "version": "load that plugin version",
    "pluginDownloadURL": "download the plugin from there and run it",
    "pluginChecksums": "accept a plugin binary by those checksums",
    "parameterization": "parameterize the plugin with that value",
    "envVarMappings": "give the plugin other environment variables (credentials) than its own",
}


def check_provider(where: str, urn: str, resource: Mapping[str, Any], declared: Declaration) -> Iterator[str]:
    package = _type_of(urn).removeprefix(PROVIDER_PREFIX)
    if package not in declared.packages:
        yield f"{where}: a provider of package {shown(package)}, which the program does not use"
        return
    expected = declared.providers.get(urn)
    if expected is None:
        own = sorted(u.rsplit("::", 1)[-1] for u in declared.providers if _type_of(u) == f"{PROVIDER_PREFIX}{package}")
        yield (
            f"{where}: a provider the program does not declare (the {package} provider it declares: "
            f"{shown(', '.join(own))}; a default provider is named after the plugin version the SDK asks)"
        )
        return
    for part in ("inputs", "outputs"):
        stored = resource.get(part)
        if stored is None and part == "outputs":
            continue
        if not isinstance(stored, Mapping):
            yield f"{where}: {part} is not an object"
            continue
        # The engine stores the checked settings as outputs, without `__internal`.
        want = expected if part == "inputs" else {k: v for k, v in expected.items() if k != INTERNAL}
        for key in sorted(set(stored) | set(want), key=str):
            if key == INTERNAL:
                yield from _check_internal(where, part, stored.get(key, None), want.get(key), key in stored)
            elif key not in want:
                does = INTERNAL_FIELDS.get(key, "configure the plugin with it")
                yield f"{where}: {part}.{key} is {shown(stored[key])}, which the program does not set (the engine would {does})"
            elif key not in stored:
                if part == "inputs":
                    yield f"{where}: {part}.{key} is missing; the program declares {shown(want[key])}"
            elif _is_secret(stored[key]) or stored[key] != want[key]:
                yield f"{where}: {part}.{key} is {shown(stored[key])}, the program declares {shown(want[key])}"


def _check_internal(where: str, part: str, stored: Any, wanted: Any, present: bool) -> Iterator[str]:
    if not present:
        # Without `__internal` the engine reads name, pluginDownloadURL, parameterization, ...
        # from the top level (getInternal): the program's engine always writes it.
        yield f"{where}: {part}.{INTERNAL} is missing (the engine would read the plugin's identity from the top level)"
        return
    if not isinstance(stored, Mapping):
        yield f"{where}: {part}.{INTERNAL} is {shown(stored)}, not an object"
        return
    for key in sorted(set(stored) | set(wanted or {}), key=str):
        value = stored.get(key)
        if (wanted or {}).get(key) != value or key not in (wanted or {}):
            does = INTERNAL_FIELDS.get(str(key), "read it to choose or configure the plugin")
            yield (
                f"{where}: {part}.{INTERNAL}.{key} is {shown(value)}, the program declares "
                f"{shown((wanted or {}).get(key))} (the engine would {does})"
            )


def check_cloud_resource(
    where: str, resource: Mapping[str, Any], declared: DeclaredResource, stored_outputs: Mapping[str, Mapping[str, Any]]
) -> Iterator[str]:
    """Declared plain inputs unchanged; wired inputs wired; undeclared inputs only the provider's own."""
    filled = {**FILLED_EVERYWHERE, **PROVIDER_FILLED.get(declared.type, {})}
    for part in ("inputs", "outputs"):
        stored = resource.get(part)
        if stored is None and part == "outputs":
            continue
        if not isinstance(stored, Mapping):
            yield f"{where}: {part} is not an object"
            continue
        for key, want in sorted(declared.inputs.items()):
            if key not in stored:
                if part == "inputs" and want not in (None, [], {}):
                    yield f"{where}: {part}.{key} is missing; the program declares it"
                continue
            value = stored[key]
            if key in declared.secret_inputs or _is_secret(value):
                continue  # a secret's value is checked by the program's own up, not readable here
            sources = declared.wired.get(key)
            if sources:
                if isinstance(want, str) and value not in {
                    s for urn in sources for s in _strings_in(stored_outputs.get(urn, {}))
                }:
                    yield f"{where}: {part}.{key} is {shown(value)}, not an output of the resource the program takes it from"
            elif value != want and not (isinstance(want, float) and value == want):
                yield f"{where}: {part}.{key} is {shown(value)}, the program declares {shown(want)}"
        if part == "inputs":
            for key in sorted(set(stored) - set(declared.inputs), key=str):
                if key not in filled:
                    yield f"{where}: inputs.{key} is {shown(stored[key])}, which the program does not set"
                elif filled[key] is not ANY and stored[key] != filled[key]:
                    yield f"{where}: inputs.{key} is {shown(stored[key])}; unset by the program, it must be the provider's default {shown(filled[key])}"
        else:
            for key, default in filled.items():
                if key not in declared.inputs and key in stored and default is not ANY and stored[key] != default:
                    yield f"{where}: outputs.{key} is {shown(stored[key])}; unset by the program, it must be the provider's default {shown(default)}"


def check_resource(
    resource: Any, declared: Declaration, label: str = "", outputs: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[str]:
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
    if urn in declared.provider_of:
        provider = resource.get("provider")
        expected = declared.provider_of[urn]
        if not isinstance(provider, str) or provider.rsplit("::", 1)[0] != expected:
            yield f"{where}: its provider is {shown(provider)}, the program gives it {shown(expected)}"
    if type_token == COMMAND_TYPE:
        yield from check_command(where, resource, declared.commands[urn])
    elif urn in declared.resources:
        yield from check_cloud_resource(where, resource, declared.resources[urn], outputs or {})


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
    # What each stored resource's outputs are, for inputs wired from them.
    outputs = {
        r["urn"]: r["outputs"]
        for _, r in entries
        if isinstance(r, Mapping) and isinstance(r.get("urn"), str) and isinstance(r.get("outputs"), Mapping) and not r.get("delete")
    }
    for label, resource in entries:
        problems += check_resource(resource, declared, label, outputs)
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
    """The exported state, or why it cannot be read: then it is refused (and alerted on) like any
    other state that is not the program's. A state nested past json_input's bound is one of those."""
    try:
        return json_input.read(path, "the exported state"), None
    except json_input.JsonInputError as exc:
        return None, f"cannot read the exported state {shown(str(path))}: {shown(str(exc), quote=False)}"


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
    parser.add_argument("--config-file", type=Path, help="the settings the stack runs with (`pulumi --config-file`)")
    args = parser.parse_args(argv)
    match = PR_STACK.fullmatch(args.stack)
    if not match or not PR_NUMBER.fullmatch(match["number"]):
        print(f"verify_state: {shown(args.stack)} is not a PR stack (preview-pr-<N>)", file=sys.stderr)
        return 2

    document, unreadable = _read(args.state)
    if unreadable:
        verdict = {"stack": args.stack, "verified": False, "resources": 0, "commands": 0, "missing": [], "problems": [unreadable]}
    else:
        try:
            declared = declare(args.stack, args.config_file) if args.config_file else declare(args.stack)
        except (FileNotFoundError, ValueError) as exc:
            print(f"verify_state: {shown(str(exc), quote=False)}", file=sys.stderr)
            return 2
        verdict = verify(document, declared)
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
