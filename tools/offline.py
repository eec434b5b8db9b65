"""Runs the real program under Pulumi's mocks and records the resource graph it declares.

The offline plan (the main job without cloud credentials) and the tests share this one recorder:
every resource with its type, parent, inputs, which inputs are secret, its options and its
dependency edges (`request.dependencies`: explicit `depends_on`, expanded, plus output
dependencies). Provider-computed outputs (ARNs, versions, URLs) are fabricated per type token
from the inputs, deterministically, so the program's data flow can be checked and two runs on
the same tree compare equal.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import runpy
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from core.phases import PHASE_TYPE
from core.stack_files import PROJECT_ROOT, config_file_values, stack_file_values

MAIN = PROJECT_ROOT / "__main__.py"
SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270"  # Pulumi's wire marker for a secret value, not a password  # nosec B105
SIGNATURE_KEY = "4dabf18193072939515e22adb298388d"
# The program's Pulumi runtime state is module-global; two programs at once would mix their graphs.
_ONE_PROGRAM_AT_A_TIME = threading.Lock()


@dataclass
class RecordedResource:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    secret_inputs: set[str]
    dependencies: set[str]
    property_dependencies: dict[str, set[str]]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    secret_outputs: set[str] = field(default_factory=set)
    outputs: dict[str, Any] = field(default_factory=dict)
    # What the SDK asks the engine for the resource's plugin (the default provider of a custom
    # resource is chosen and configured from these): version, download URL, package reference.
    version: str = ""
    plugin_download_url: str = ""
    package_ref: str = ""
    provider: str = ""
    """The explicit provider reference (`<provider urn>::<id>`), empty for a default provider."""


@dataclass
class Recording:
    """What one evaluation of the program declared."""

    stack: str
    resources: dict[str, RecordedResource] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)

    def by_name(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources.values() if r.name == name]
        # A Build component and the Command it wraps share the build's name: the Command is meant.
        if len(matches) > 1:
            matches = [r for r in matches if r.custom]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r} in stack {self.stack}")
        return matches[0]

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources.values() if r.type == type_token]

    def names(self) -> set[str]:
        return {r.name for r in self.resources.values()}

    def ancestors(self, urn: str) -> set[str]:
        """Every resource `urn` waits for, directly or through others."""
        seen: set[str] = set()
        pending = list(self.resources[urn].dependencies)
        while pending:
            current = pending.pop()
            if current in seen or current not in self.resources:
                continue
            seen.add(current)
            pending.extend(self.resources[current].dependencies)
        return seen

    def phase_of(self, urn: str) -> str | None:
        """The phase a resource belongs to: the name of its nearest `Phase` ancestor."""
        current = self.resources.get(urn)
        while current is not None:
            if current.type == PHASE_TYPE:
                return current.name
            current = self.resources.get(current.parent)
        return None


def _secret_paths(raw: Any, path: str = "") -> set[str]:
    """Top-level property names whose value is, or contains, a secret."""
    found: set[str] = set()
    if isinstance(raw, dict):
        if raw.get(SIGNATURE_KEY) == SECRET_SIGNATURE:
            return {path.split(".")[0]}
        for key, value in raw.items():
            found |= _secret_paths(value, f"{path}.{key}" if path else key)
    elif isinstance(raw, list):
        for item in raw:
            found |= _secret_paths(item, path)
    return found


def _plain(value: Any) -> Any:
    """Inputs as JSON-like data; assets and archives by their content, so runs compare equal."""
    if isinstance(value, dict):
        if value.get(SIGNATURE_KEY) == SECRET_SIGNATURE:
            return _plain(value.get("value"))
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, pulumi.StringAsset):
        return {"asset:text": value.text}
    if isinstance(value, pulumi.AssetArchive):
        return {"archive:assets": {key: _plain(item) for key, item in value.assets.items()}}
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):
        return {"asset:path": getattr(value, "path", repr(value))}
    return value


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class FabricatingMocks(pulumi.runtime.Mocks):
    """Fabricates the outputs a provider would compute, per type token, from the inputs."""

    def __init__(self, *, account_id: str, region: str):
        self.account_id = account_id
        self.region = region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        name = inputs.get("name") or args.name
        account, region = self.account_id, self.region
        token = _digest(args.typ, args.name, _plain(inputs))[:12]
        outputs: dict[str, Any] = {**inputs}
        match args.typ:
            case "aws:kms/key:Key":
                outputs |= {"arn": f"arn:aws:kms:{region}:{account}:key/{token}", "keyId": token}
            case "aws:kms/alias:Alias":
                outputs |= {"arn": f"arn:aws:kms:{region}:{account}:{name}"}
            case "aws:s3/bucket:Bucket":
                bucket = inputs.get("bucket") or args.name
                outputs |= {"arn": f"arn:aws:s3:::{bucket}", "bucket": bucket}
            case "aws:iam/role:Role":
                outputs |= {"arn": f"arn:aws:iam::{account}:role/{name}", "name": name}
            case "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
                host = str(inputs.get("url", "")).removeprefix("https://")
                outputs |= {"arn": f"arn:aws:iam::{account}:oidc-provider/{host}"}
            case "aws:dynamodb/table:Table":
                outputs |= {"arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}"}
            case "aws:cloudtrail/trail:Trail":
                outputs |= {"arn": f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"}
            case "aws:lambda/function:Function":
                arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
                # Publishing makes a new version number whenever code or configuration changes.
                version = str(1 + int(token, 16) % 997) if inputs.get("publish") else "$LATEST"
                # AWS stamps lastModified on every code or configuration update.
                outputs |= {"arn": arn, "qualifiedArn": f"{arn}:{version}", "version": version, "lastModified": token}
            case "aws:lambda/alias:Alias":
                function = inputs.get("functionName")
                outputs |= {"arn": f"arn:aws:lambda:{region}:{account}:function:{function}:{name}"}
            case "aws:cloudwatch/logGroup:LogGroup":
                outputs |= {"arn": f"arn:aws:logs:{region}:{account}:log-group:{name}"}
            case "aws:cloudwatch/metricAlarm:MetricAlarm":
                outputs |= {"arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"}
            case "aws:sns/topic:Topic":
                outputs |= {"arn": f"arn:aws:sns:{region}:{account}:{name}"}
            case "aws:lambda/functionUrl:FunctionUrl":
                outputs |= {"functionUrl": f"https://{token}.lambda-url.{region}.on.aws/", "urlId": token}
            case "cloudflare:index/pagesProject:PagesProject":
                outputs |= {"subdomain": f"{name}.pages.dev"}
            case "command:local:Command":
                # What a step prints: a content hash, or a build's record of what it published.
                environment = _plain(inputs.get("environment")) or {}
                stdout = _digest(environment, _plain(inputs.get("triggers")))
                if "steps.build_" in str(inputs.get("create") or "") and environment.get("ARTIFACTS_BUCKET"):
                    obj = _digest(stdout)
                    stdout = json.dumps(
                        {
                            "sha256": stdout,
                            "bucket": environment["ARTIFACTS_BUCKET"],
                            "key": f"{environment.get('ARTIFACTS_PREFIX')}/build/{obj}.zip",
                            "version": token,
                            "object_sha256": obj,
                        }
                    )
                outputs |= {"stdout": stdout, "stderr": ""}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps what each registration asked for: parent, inputs, edges, options."""

    def __init__(self, mocks: FabricatingMocks, recording: Recording):
        super().__init__(mocks)
        self.recording = recording

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
        inputs = rpc.deserialize_properties(request.object)
        urn = response.urn
        self.recording.resources[urn] = RecordedResource(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            custom=request.custom,
            inputs=_plain(inputs),
            secret_inputs=_secret_paths(raw),
            dependencies=set(request.dependencies),
            property_dependencies={
                key: set(value.urns) for key, value in request.propertyDependencies.items()
            },
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
            secret_outputs=set(request.additionalSecretOutputs),
            outputs=_plain(self.resources[urn].state) if urn in self.resources else {},
            version=request.version,
            plugin_download_url=request.pluginDownloadURL,
            package_ref=request.packageRef,
            provider=request.provider,
        )
        return response


def committed_values(stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The plain values of the config file a stack runs on (a PR stack: the template's, which every
    `pulumi` command of a PR stack takes as `--config-file`)."""
    return stack_file_values(stack, "webstack", root)


def file_values(config_file: Path) -> dict[str, Any]:
    """The plain values of a stack config file the stack runs with (`pulumi --config-file FILE`)."""
    return config_file_values(config_file, "webstack")


def config_for(stack: str, values: Mapping[str, Any], project: str = "webstack") -> dict[str, str]:
    """Stack config as the Pulumi CLI hands it to a program: namespaced keys, string values."""
    config = {}
    for key, value in values.items():
        full = key if ":" in key else f"{project}:{key}"
        config[full] = value if isinstance(value, str) else json.dumps(value)
    return config


def run_program(
    stack: str,
    config: Mapping[str, str],
    *,
    secret_keys: tuple[str, ...] = (),
    account_id: str = "123456789012",
    region: str = "us-east-1",
    main: Path = MAIN,
    recording: Recording | None = None,
) -> Recording:
    """Evaluates `main` for `stack` under mocks; raises what the program raised (e.g. SettingsError).

    Pass `recording` to see what was registered even when the program raised.
    """
    recording = recording if recording is not None else Recording(stack=stack)

    def evaluate() -> None:
        pulumi.runtime.set_all_config(dict(config), list(secret_keys))
        mocks = FabricatingMocks(account_id=account_id, region=region)
        monitor = RecordingMonitor(mocks, recording)
        pulumi.runtime.set_mocks(mocks, project="webstack", stack=stack, preview=False, monitor=monitor)
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(main), run_name="__main__")))
        root = pulumi.runtime.settings.get_root_resource()
        exports = getattr(root, "outputs", {}) or {}
        resolved = _sync_await(pulumi.Output.from_input(exports).future(with_unknowns=True))
        recording.exports.update(resolved or {})

    with _ONE_PROGRAM_AT_A_TIME:
        # A fresh context per run: Pulumi keeps its settings, config and root stack in ContextVars.
        contextvars.Context().run(evaluate)
    return recording
