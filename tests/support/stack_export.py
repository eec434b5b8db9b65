"""A stack's state in the shape `pulumi stack export` prints, built from the program's recording.

    document = exported_state(recording)   # {"version": 3, "deployment": {...}}

What the real engine writes (checked against bin/pulumi's own export, see test_verify_state's engine
test): one entry per resource with `urn` (the parents' types joined by `$`), `custom`, `type`,
`parent`, for custom resources `id`, `inputs`, `outputs` and `provider` (`<provider urn>::<id>`);
the Stack as the root; a default provider per package the program uses without one of its own,
named `default_<version>` with inputs `{"__internal": {}, "version": ...}`; an explicit provider
with its settings, `version` and `__internal: {}` as inputs and the same without `__internal` as
outputs (checked against bin/pulumi's export of a deployed preview, tests/test_sweeper_teardown.py).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
from typing import Any

from workflow.verify_state import COMMAND_TYPE, PROVIDER_PREFIX, engine_urns

SECRET_KEY = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"


def encrypted(ciphertext: str = "v1:AAAA:BBBB") -> dict[str, str]:
    return {SECRET_KEY: SECRET_VALUE, "ciphertext": ciphertext}


def _sdk_version(package: str) -> str:
    try:
        return importlib.metadata.version(f"pulumi_{package}")
    except importlib.metadata.PackageNotFoundError:
        return "1.0.0"


def exported_state(recording, *, project: str = "webstack") -> dict[str, Any]:
    stack = recording.stack
    urns = engine_urns(recording)
    root = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
    resources: list[dict[str, Any]] = [{"urn": root, "custom": False, "type": "pulumi:pulumi:Stack"}]

    explicit = {urns[u] for u, r in recording.resources.items() if r.type.startswith(PROVIDER_PREFIX)}
    explicit_packages = {u.split("::")[2].removeprefix(PROVIDER_PREFIX) for u in explicit}
    providers: dict[str, str] = {}
    for package in sorted(
        {r.type.split(":", 1)[0] for r in recording.resources.values() if r.custom and not r.type.startswith("pulumi:")}
        - explicit_packages
    ):
        version = _sdk_version(package)
        urn = f"urn:pulumi:{stack}::{project}::{PROVIDER_PREFIX}{package}::default_{version.replace('.', '_')}"
        providers[package] = f"{urn}::00000000-0000-4000-8000-{len(providers):012d}"
        resources.append(
            {
                "urn": urn,
                "custom": True,
                "id": providers[package].rsplit("::", 1)[-1],
                "type": f"{PROVIDER_PREFIX}{package}",
                "inputs": {"__internal": {}, "version": version},
                "outputs": {"version": version},
            }
        )

    for mock_urn, resource in recording.resources.items():
        urn = urns[mock_urn]
        entry: dict[str, Any] = {
            "urn": urn,
            "custom": resource.custom,
            "type": resource.type,
            "parent": urns.get(resource.parent, root),
        }
        if resource.custom and resource.type.startswith(PROVIDER_PREFIX):
            outputs = {**copy.deepcopy(resource.inputs), "version": resource.version}
            entry |= {"id": f"{resource.name}-provider-id", "inputs": {**outputs, "__internal": {}}, "outputs": outputs}
        elif resource.custom:
            inputs = copy.deepcopy(resource.inputs)
            outputs = copy.deepcopy(resource.outputs) or copy.deepcopy(inputs)
            if resource.type == COMMAND_TYPE:
                outputs.setdefault("stdout", "")
                outputs["stderr"] = encrypted()
                entry["additionalSecretOutputs"] = ["stderr"]
            entry |= {"id": f"{resource.name}-0123abcd", "inputs": inputs, "outputs": outputs}
            package = resource.type.split(":", 1)[0]
            own = next((u for u in explicit if u.split("::")[2] == f"{PROVIDER_PREFIX}{package}"), None)
            entry["provider"] = f"{own}::{own.rsplit('::', 1)[-1]}-provider-id" if own else providers[package]
        resources.append(entry)

    return {
        "version": 3,
        "deployment": {
            # The engine's "magic cookie" is the sha256 of the version (anyone can compute it).
            "manifest": {"time": "2026-01-01T00:00:00Z", "magic": hashlib.sha256(b"v3.272.0").hexdigest(), "version": "v3.272.0"},
            "secrets_providers": {"type": "cloud", "state": {"url": "awskms://alias/webstack-pulumi-state"}},
            "resources": resources,
        },
    }


def command(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The exported entry of the Command named `name`."""
    [entry] = [
        r for r in document["deployment"]["resources"] if r["type"] == COMMAND_TYPE and r["urn"].endswith(f"::{name}")
    ]
    return entry
