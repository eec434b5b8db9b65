"""`pulumi preview --json` documents built from the URNs the program really declares.

The plan report reads URNs, types, parents and old states; a hand-written fixture drifts from the
program (names, nesting) the moment a component changes. `preview_document(recording, ops)` takes
a recording of the real `__main__.py` and marks the named custom resources with a preview op
(`delete`, `replace`, `update`, ...), every other resource `same`, in the shape the CLI prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from tools.offline import RecordedResource, Recording


def _state(resource: RecordedResource) -> dict[str, Any]:
    state: dict[str, Any] = {
        "urn": resource.urn,
        "custom": resource.custom,
        "type": resource.type,
        "inputs": resource.inputs,
        "outputs": resource.outputs,
    }
    if resource.parent:
        state["parent"] = resource.parent
    if resource.protect:
        state["protect"] = True
    if resource.retain_on_delete:
        state["retainOnDelete"] = True
    return state


def preview_document(
    recording: Recording, ops: Mapping[str, str], replace_reasons: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """A preview of `recording` where each custom resource named in `ops` gets that op."""
    reasons = replace_reasons or {}
    steps = []
    summary: Counter[str] = Counter()
    unknown = set(ops) - {r.name for r in recording.resources.values() if r.custom}
    if unknown:
        raise KeyError(f"the program declares no custom resource named {sorted(unknown)}")
    for resource in recording.resources.values():
        op = ops.get(resource.name, "same") if resource.custom else "same"
        state = _state(resource)
        step: dict[str, Any] = {"op": op, "urn": resource.urn, "oldState": state, "detailedDiff": None}
        if op != "delete":
            step["newState"] = state
        if op == "replace":
            keys = reasons.get(resource.name, ["name"])
            step["replaceReasons"] = keys
            step["diffReasons"] = keys
            step["detailedDiff"] = {key: {"kind": "update-replace", "inputDiff": True} for key in keys}
        steps.append(step)
        summary[op] += 1
    return {"steps": steps, "changeSummary": dict(summary)}
