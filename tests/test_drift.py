"""workflow.drift's reading of `pulumi preview --json` (the real engine's run is test_real_engine's 11)."""

from __future__ import annotations

import pytest

from workflow.drift import UNKNOWN, DriftError, changes, main, plan_of, type_of

FUNCTION = "urn:pulumi:prod::webstack::webstack:index:Phase$webstack:index:LambdaApi$aws:lambda/function:Function::api-function"
ALIAS = "urn:pulumi:prod::webstack::webstack:index:Phase$webstack:index:LambdaApi$aws:lambda/alias:Alias::api-alias"


def step(urn: str, op: str, reasons: list[str], inputs: dict) -> dict:
    return {"op": op, "urn": urn, "diffReasons": reasons, "newState": {"urn": urn, "inputs": inputs}}


def test_the_drifted_resource_is_told_from_what_only_follows_it():
    plan = {
        "steps": [
            step(FUNCTION, "update", ["memorySize"], {"memorySize": 128}),
            step(ALIAS, "update", ["functionVersion"], {"functionVersion": UNKNOWN}),
            {"op": "same", "urn": "urn:pulumi:prod::webstack::aws:s3/bucket:Bucket::b"},
        ]
    }
    drifted, following = changes(plan)
    assert [(r["type"], r["name"], r["properties"]) for r in drifted] == [("aws:lambda/function:Function", "api-function", ["memorySize"])]
    assert [r["name"] for r in following] == ["api-alias"]
    # An alias changed by hand (a known value differs) is drift of its own.
    drifted, following = changes({"steps": [step(ALIAS, "update", ["functionVersion"], {"functionVersion": "3"})]})
    assert [r["name"] for r in drifted] == ["api-alias"] and following == []
    # A resource deleted out-of-band comes back as a create: drift, whatever its inputs.
    drifted, _ = changes({"steps": [step(FUNCTION, "create", [], {"memorySize": UNKNOWN})]})
    assert [r["op"] for r in drifted] == ["create"]


def test_types_come_from_the_urn_under_parents():
    assert type_of(FUNCTION) == "aws:lambda/function:Function"
    assert type_of("not-a-urn") == ""


@pytest.mark.parametrize("output", ["", "error: no stack named 'prod' found", '{"steps": [', "[1, 2]"])
def test_output_without_a_plan_is_an_error(output: str):
    with pytest.raises(DriftError):
        plan_of(output)


def test_a_plan_followed_by_engine_events_is_read():
    assert plan_of('{"steps": []}\n{"sequence": 1}') == {"steps": []}


@pytest.mark.parametrize(("argv", "expected"), [(["--stack", "staging", "--output", "x.json"], "a stack name"), (["--stack", "prod"], "--output")])
def test_bad_arguments_are_one_line(argv: list[str], expected: str, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1
