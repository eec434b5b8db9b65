"""The workflows, run for real: every GitHub workflow end to end under nektos/act (bin/act), against
the local cloud, in the order a repository lives them (issue 25, docs/workflows.md).

One world for the module (sandbox/scenarios.py): a local cloud, the GitHub stand-in, this working
tree as the repository, its runner (sandbox/workflow_runner.py), prod bootstrapped once as the
README says. The scenarios run in order and build on each other (prod deployed by the first is
what the later ones must leave untouched, the audit reads the runs before it). Each is asserted
on the services themselves: moto, PostgreSQL's catalog, the Cloudflare stand-in, the S3 state
backend, the GitHub stand-in, the alert webhook; act's exit code alone proves nothing.

Run: `python -m pytest -m workflows tests/test_workflow_runs.py` (part of `.ci/run`).

Only the scenarios that run end to end are here (issue 25 §3: 1, push to main); the others (a
PR's life, the sweeper, security, audit, the trust check, two pushes) are on branch `act` until
they pass.
"""

from __future__ import annotations

import pytest
import yaml
from botocore.exceptions import ClientError

from components.aws_policies import META_OBJECT
from core.names import ALIAS_NAME, STATE_PREFIX, foundation_names, function_name
from sandbox import runner_packages
from sandbox.engine import BIN_DIR
from sandbox.scenarios import ACCOUNT_ID, PROJECT, World
from sandbox.workflow_runner import RunRecord

pytestmark = [
    pytest.mark.workflows,
    pytest.mark.skipif(not (BIN_DIR / "act").exists(), reason="bin/act not built (python -m sandbox.engine build)"),
]

PROD_FUNCTION = function_name(PROJECT, "prod")


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
    # Every state object under its trust boundary's key, as S3 holds it: prod's under prod's key
    # (the key KMS names by its alias, not the URL's), meta.yaml under SSE-S3.
    prod_key = world.aws("kms").describe_key(KeyId=foundation_names(PROJECT, ACCOUNT_ID)["state_key_alias"])["KeyMetadata"]["Arn"]
    encryption = world.backend_encryption()
    assert encryption.pop(META_OBJECT) == ("AES256", None)
    assert encryption and set(encryption.values()) == {("aws:kms", prod_key)}, encryption
    # The bucket's key rules are live here: a prod object under S3's default key is refused.
    with pytest.raises(ClientError, match="AccessDenied|403"):
        world.aws("s3").put_object(Bucket=world.prod_outputs["stateBucket"], Key=f"{STATE_PREFIX}/.pulumi/backups/{PROJECT}/prod/probe", Body=b"")
    # Offline: every pip install came from the wheelhouse .ci/setup built, and no job asked the
    # edge for a host outside the zone (PyPI, npm: sandbox/runner_packages.py).
    assert str(runner_packages.wheelhouse_dir()) in record.text(), "pip did not look in the runner's wheelhouse"
    assert world.edge.refused == [], f"the jobs tried to reach {world.edge.refused} through the edge"
    state.update(prod_version=version, prod_sha=record.sha)
    world.create_preview_login()
