"""The workflows, run for real: every GitHub workflow end to end under nektos/act (bin/act), against
the local cloud, in the order a repository lives them (issue 25, docs/workflows.md).

One world for the module (sandbox/scenarios.py): a local cloud, the GitHub stand-in, this working
tree as the repository, its runner (sandbox/workflow_runner.py), prod bootstrapped once as the
README says. The scenarios run in order and build on each other (prod deployed by the first is
what the later ones must leave untouched, the audit reads the runs before it). Each is asserted
on the services themselves: moto, PostgreSQL's catalog, the Cloudflare stand-in, the S3 state
backend, the GitHub stand-in, the alert webhook; act's exit code alone proves nothing.

Run: `python -m pytest -m workflows tests/test_workflow_runs.py` (part of `.ci/run`).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
import requests
import yaml

from core.names import ALIAS_NAME, function_name, pages_branch, pr_schema
from sandbox.engine import BIN_DIR
from sandbox.scenarios import PROJECT, World
from sandbox.workflow_runner import RunRecord

pytestmark = [
    pytest.mark.workflows,
    pytest.mark.skipif(not (BIN_DIR / "act").exists(), reason="bin/act not built (python -m sandbox.engine build)"),
]

PR = 12
PROD_FUNCTION = function_name(PROJECT, "prod")
PR_FUNCTION = function_name(PROJECT, f"preview-pr-{PR}")
QUARANTINE_LABEL = "security-quarantine"


def ok(record: RunRecord) -> RunRecord:
    assert record.conclusion == "success", record.failure_report()
    return record


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    with World.create(tmp_path_factory.mktemp("workflows")) as made:
        made.bootstrap_prod()
        yield made


@pytest.fixture(scope="module")
def state() -> dict:
    """What the scenarios hand to the ones after them (prod's version, the quarantine issue, ...)."""
    return {}


def alias_version(world: World, function: str) -> str:
    return world.aws("lambda").get_alias(FunctionName=function, Name=ALIAS_NAME)["FunctionVersion"]


def schemas(world: World) -> set[str]:
    return {row[0] for row in world.query("SELECT nspname FROM pg_namespace")}


def _web_change(world: World, text: str) -> dict[str, str]:
    """A web-only change: one line of the site's page (examples/app/apps/web)."""
    pages = sorted((world.repository.work / "examples/app/apps/web").rglob("page.tsx"))
    assert pages, "the example app has no page.tsx"
    path = pages[0]
    return {str(path.relative_to(world.repository.work)): path.read_text() + f"\n// {text}\n"}


# --- 1. push to main ----------------------------------------------------------------------------


def test_1_push_to_main_makes_prod_live(world: World, state: dict) -> None:
    assert not world.aws("lambda").list_functions()["Functions"], "the bootstrap deploys no function: the workflow must"
    record = ok(world.push_main("Deploy prod", _web_change(world, "first deploy")))

    # The function and `stable` (a published version), the schema, the Pages production
    # deployment, DNS and health: all made by this run.
    version = alias_version(world, PROD_FUNCTION)
    assert version.isdigit()
    tables = world.query("SELECT tablename FROM pg_tables WHERE schemaname = 'app'")
    assert tables, "drizzle-kit created no table in prod's schema"
    main_deployments = world.pages_deployments("main")
    assert main_deployments and main_deployments[0]["environment"] == "production"
    config = yaml.safe_load((world.repository.work / "Pulumi.prod.yaml").read_text())["config"]
    site_host = f"{config[f'{PROJECT}:siteSubdomain']}.{world.endpoints.zone_name}"
    assert [r["content"] for r in world.dns_records(site_host)] == [f"{world.pages_project}.pages.dev"]
    assert world.site(site_host).status_code == 200
    # The run's record: the timeline in the job summary, the deploy record in PostgreSQL.
    deploy = record.job("deploy")
    assert "gantt" in deploy.summary and "infrastructure" in deploy.summary
    rows = world.query("SELECT stack, outcome, commit_sha FROM webstack_audit.deploys ORDER BY id")
    assert rows[-1][:2] == ("prod", "success") and rows[-1][2] == record.sha
    assert f"{PROJECT}/prod.json" in "\n".join(world.backend_objects())
    state.update(prod_version=version, prod_sha=record.sha)
    world.create_preview_login()


def test_1b_the_unknown_event_log_flag_fails_the_deploy(world: World, state: dict) -> None:
    """Restoring `--event-log` without PULUMI_DEBUG_COMMANDS (the bug this tier was written to
    catch) in a throwaway copy of deploy.yml fails the run, and prod stays as it was."""
    text = (world.repository.work / ".github/workflows/deploy.yml").read_text()
    broken = re.sub(r'\n\s+PULUMI_DEBUG_COMMANDS: "?true"?\n', "\n", text)
    assert broken != text, "deploy.yml no longer sets PULUMI_DEBUG_COMMANDS: update this test"
    record = world.push_main("Deploy with the old pulumi up line", workflow_text=broken)
    assert record.conclusion == "failure"
    assert any("unknown flag: --event-log" in line for line in record.job("deploy").log), record.failure_report()
    assert alias_version(world, PROD_FUNCTION) == state["prod_version"]


# --- 2-4. a pull request's life -----------------------------------------------------------------


def test_2_pr_opened_deploys_its_own_stack_and_comments_once(world: World, state: dict) -> None:
    prod_before = world.aws("lambda").get_function(FunctionName=PROD_FUNCTION)["Configuration"]
    record = ok(world.open_pr(PR, "feature-12", "A feature", _web_change(world, "feature 12")))
    comments = [c for c in world.github.comments(PR) if c["user"]["type"] == "Bot"]
    assert len(comments) == 1, comments
    body = comments[0]["body"]
    outputs = record.job("preview").outputs
    assert body.startswith("<!-- webstack-preview")
    function = world.aws("lambda").get_function(FunctionName=PR_FUNCTION)["Configuration"]
    assert function["FunctionName"] in body or "api" in body.lower()
    assert f"{pages_branch(f'preview-pr-{PR}')}." in body  # the site URL names the PR's branch
    assert pr_schema("app_preview", PR) in schemas(world)
    assert world.pages_deployments(f"pr-{PR}")
    # Prod untouched: same function code and configuration, same `stable`.
    prod_after = world.aws("lambda").get_function(FunctionName=PROD_FUNCTION)["Configuration"]
    assert (prod_after["CodeSha256"], prod_after["LastModified"]) == (prod_before["CodeSha256"], prod_before["LastModified"])
    assert alias_version(world, PROD_FUNCTION) == state["prod_version"]
    state.update(comment_id=comments[0]["id"], pr_function=function, preview_outputs=outputs)


def test_3_a_web_only_push_rebuilds_the_site_and_edits_the_comment(world: World, state: dict) -> None:
    before = len(world.pages_deployments(f"pr-{PR}"))
    record = ok(world.push_pr(PR, "Only the page", _web_change(world, "synchronize")))
    function = world.aws("lambda").get_function(FunctionName=PR_FUNCTION)["Configuration"]
    assert (function["CodeSha256"], function["LastModified"]) == (
        state["pr_function"]["CodeSha256"], state["pr_function"]["LastModified"]), "the API was redeployed"
    assert len(world.pages_deployments(f"pr-{PR}")) == before + 1, "the site was not deployed again"
    comments = [c for c in world.github.comments(PR) if c["user"]["type"] == "Bot"]
    assert [c["id"] for c in comments] == [state["comment_id"]], "the comment was duplicated, not edited"
    assert world.github.pulls[PR]["head"]["sha"][:7] in comments[0]["body"]
    assert comments[0]["updated_at"] >= comments[0]["created_at"]
    assert record.job("comment").result == "success"


def _nothing_left_of(world: World, number: int) -> None:
    stack = f"preview-pr-{number}"
    assert function_name(PROJECT, stack) not in [f["FunctionName"] for f in world.aws("lambda").list_functions()["Functions"]]
    roles = [r["RoleName"] for r in world.aws("iam").list_roles()["Roles"]]
    assert not [r for r in roles if stack in r], roles
    assert pr_schema("app_preview", number) not in schemas(world)
    assert not world.pages_deployments(f"pr-{number}")
    assert not [r for r in world.dns_records(f"pr-{number}.www.{world.endpoints.zone_name}")]
    assert not [k for k in world.backend_objects() if f"/{stack}." in k or k.endswith(f"/{stack}")], world.backend_objects()


def test_4_pr_closed_leaves_nothing_behind(world: World, state: dict) -> None:
    ok(world.close_pr(PR))
    _nothing_left_of(world, PR)
    assert alias_version(world, PROD_FUNCTION) == state["prod_version"]


# --- 5. the sweeper -----------------------------------------------------------------------------


def test_5_sweeper_destroys_a_closed_prs_leftover_and_refuses_a_tampered_state(world: World, state: dict) -> None:
    # Two PRs whose cleanup never ran: one leftover as the preview left it, one whose state a PR
    # rewrote (a delete command that would run on the sweeper's runner).
    marker = world.root / "tampered-delete-ran"
    world.leftover_preview(21)
    world.leftover_preview(22, tamper_delete=f"touch {marker}")
    for number in (21, 22):
        world.github.set_pr(number, state="closed")
    alerts_before = len(world.alerts())
    record = world.schedule("sweeper.yml")
    _nothing_left_of(world, 21)
    assert not marker.exists(), "the tampered state's delete command ran"
    assert function_name(PROJECT, "preview-pr-22") in [f["FunctionName"] for f in world.aws("lambda").list_functions()["Functions"]]
    new_alerts = world.alerts()[alerts_before:]
    assert any("preview-pr-22" in json.dumps(a) for a in new_alerts), new_alerts
    assert record.conclusion == "failure"  # the refused stack fails its matrix job, visibly


# --- 6. security --------------------------------------------------------------------------------


def test_6_a_planted_secret_quarantines_and_the_gate_holds_until_the_issue_is_closed(world: World, state: dict) -> None:
    # A live credential committed by mistake: the previews' Cloudflare token (the scan verifies it
    # against the local Cloudflare API, as trufflehog would against Cloudflare's).
    secret = world.endpoints.cloudflare_token
    alerts_before = len(world.alerts())
    record = world.push_branch("leak", "Add a config file", {"config/ci.env": f"CLOUDFLARE_API_TOKEN={secret}\n"})
    assert record.workflow == "security.yml" and record.conclusion == "failure"
    assert record.job("secrets").result == "failure"
    issues = world.github.open_issues(QUARANTINE_LABEL)
    assert len(issues) == 1, issues
    assert "config/ci.env" in issues[0]["body"] and "CloudflareApiToken" in issues[0]["body"]
    alerts = world.alerts()[alerts_before:]
    assert any(a["path"].endswith("/security") for a in alerts), alerts
    assert "Security quarantine" in record.job("quarantine").summary
    # The issue, its comments and the alert are written by the workflow, not masked by anyone.
    everything = "\n".join([record.text(), record.log_file.read_text(), json.dumps(world.github.all_comments()),
                            json.dumps(issues), json.dumps(world.alerts())])  # fmt: skip
    assert secret not in everything and secret[:12] not in everything, "the planted secret reached an output"

    refused = world.push_main("A fix on main", {"NOTES.md": "clean\n"})
    deploy = refused.job("deploy")
    assert deploy.result == "failure"
    assert deploy.step("Security quarantine gate").result == "failure"
    assert deploy.step("pulumi up") is None or deploy.step("pulumi up").result == "skipped"
    assert alias_version(world, PROD_FUNCTION) == state["prod_version"]

    world.github.close_issue(issues[0]["number"])
    released = ok(world.push_main("Deploy after the quarantine", {"NOTES.md": "clean again\n"}))
    assert released.job("deploy").step("pulumi up").result == "success"
    state["refused_run"] = refused.run_id


# --- 7. audit -----------------------------------------------------------------------------------


def test_7_audit_reports_from_the_records_of_the_runs_above(world: World, state: dict) -> None:
    record = ok(world.dispatch("audit.yml", {"since": "1d"}))
    report = json.loads(world.artifact(record, f"audit-report-{record.run_id}", "audit-report.json"))
    text = json.dumps(report)
    assert str(state["refused_run"]) in text, "the refused deploy is not in the report"
    assert state["prod_sha"][:7] in text, "the deploy record of the first deploy is not in the report"
    assert "gantt" not in text


# --- 8. a PR job cannot get prod's credentials ----------------------------------------------------


def _preview_asking_for_prod() -> str:
    """preview.yml's job, up to its AWS credentials, asking for the prod role."""
    text = (Path(__file__).resolve().parents[1] / ".github/workflows/preview.yml").read_text()
    document = yaml.safe_load(text)
    job = document["jobs"]["preview"]
    steps = job["steps"]
    index = next(i for i, s in enumerate(steps) if "configure-aws-credentials" in str(s.get("uses")))
    steps[index]["with"]["role-to-assume"] = "${{ vars.AWS_PROD_ROLE_ARN }}"
    job["steps"] = steps[: index + 1]
    document["jobs"] = {"preview": job}
    return yaml.safe_dump({"on" if k is True else k: v for k, v in document.items()}, sort_keys=False)


def test_8_a_pr_job_cannot_assume_the_prod_role(world: World) -> None:
    world.open_pr_refs(31, "feature-31", "Another feature", {"NOTES31.md": "x\n"})
    refused = world.run_pr(31, "opened", workflow_text=_preview_asking_for_prod())
    step = refused.job("preview").step(next(s.name for s in refused.job("preview").steps if "configure-aws-credentials" in s.name))
    assert step is not None and step.result == "failure"
    assert any("Not authorized to perform sts:AssumeRoleWithWebIdentity" in a["message"] for a in refused.job("preview").annotations)

    iam = world.aws("iam")
    role = world.runner.variables["AWS_PROD_ROLE_ARN"].rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    loosened = json.loads(json.dumps(trust))
    subjects = loosened["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    subjects = [subjects] if isinstance(subjects, str) else subjects
    loosened["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] = [
        *subjects, f"repo:{world.github.repo}:environment:preview"]
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(loosened))
    try:
        passed = world.run_pr(31, "synchronize", workflow_text=_preview_asking_for_prod())
        assert passed.job("preview").result == "success", passed.failure_report()
    finally:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))


# --- 9. two pushes to main in a row ---------------------------------------------------------------


def test_9_two_pushes_in_a_row_queue_on_the_lease(world: World, state: dict) -> None:
    records: dict[str, RunRecord] = {}
    first_pushed = threading.Event()

    def push(name: str, files: dict[str, str]) -> None:
        records[name] = world.push_main(f"Push {name}", files)

    first = threading.Thread(target=push, args=("first", _web_change(world, "first of two")))
    first.start()
    world.wait_for("the first deploy's pulumi up", lambda: world.lease_holder("prod") is not None, timeout=900)
    first_pushed.set()
    push("second", _web_change(world, "second of two"))
    first.join()
    ok(records["first"])
    ok(records["second"])
    second_log = "\n".join(records["second"].job("deploy").log)
    assert "lease" in second_log and "wait" in second_log.lower(), second_log[-3000:]
    rows = world.query("SELECT commit_sha FROM webstack_audit.deploys WHERE stack = 'prod' ORDER BY id")
    assert [r[0] for r in rows[-2:]] == [records["first"].sha, records["second"].sha]
