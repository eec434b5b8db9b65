"""cleanup's destroy step, as cleanup.yml writes it, run by the real Pulumi CLI (engine tier).

(The sweeper never destroys a state: tests/test_sweeper_teardown.py. cleanup still does, in the
closed PR's own context, after workflow.verify_state.)

The step's script is taken from the workflow file and run with bash against a file backend standing
in for the S3 one: a state with the program's `database-schema` Command is imported there (as a
preview's `up` would have left it), and the step must

- destroy a genuine state: the stored `delete` (`python -m steps.schema drop`) runs against a real
  PostgreSQL and drops the PR's schema, and the stack is removed;
- refuse a planted one: its `delete` never runs, the schema and the stack are left, the step fails;
- run the checked copy even when the stored state is rewritten after the check (a PR's workflow
  holds the preview role and may write the state file at any moment).

The stored state carries a real secret (the Command's stderr, encrypted with the stored stack's
passphrase salt): the copy, in a stack of its own with another salt, still decrypts and destroys.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from components.aws_policies import DeployScope, state_objects
from core.names import PR_STACKS, foundation_names
from sandbox.engine import BIN_DIR, engine_env
from tests.support.moto import ACCOUNT_ID, aws_environment, boto_kwargs, moto_server  # noqa: F401 - fixtures
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.stack_export import SECRET_KEY, SECRET_VALUE, command, exported_state
from workflow.verify_state import COMMAND_TYPE, recording_for

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not (BIN_DIR / "pulumi").exists(), reason="bin/pulumi not built (python -m sandbox.engine build)"),
]

REPO = Path(__file__).resolve().parents[1]
STACK = "preview-pr-7"
SCHEMA = "app_preview_pr_7"
PASSPHRASE = "engine-test-passphrase"


def destroy_script() -> str:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "cleanup.yml").read_text())
    [step] = [s for s in workflow["jobs"]["destroy"]["steps"] if s.get("name") == "Destroy and remove the PR stack"]
    return step["run"]


def schema_state() -> dict:
    """What a preview's first `up` leaves when it stopped after the database schema: the Stack, the
    phase and component around it, the Command, and the command provider."""
    document = exported_state(recording_for(STACK))
    keep = {"pulumi:pulumi:Stack", "webstack:index:Phase", "webstack:index:Database", "pulumi:providers:command"}
    resources = [
        r
        for r in document["deployment"]["resources"]
        if (r["type"] in keep and not (r["type"] == "webstack:index:Phase" and not r["urn"].endswith("::database")))
        or (r["type"] == COMMAND_TYPE and r["urn"].endswith("::database-schema"))
    ]
    for r in resources:
        if r["type"] == COMMAND_TYPE:
            # A secret in plain text: `stack import` encrypts it with the stored stack's own key, so
            # the workflow's copy must carry that stack's secrets provider to decrypt it.
            r["outputs"]["stderr"] = {SECRET_KEY: SECRET_VALUE, "plaintext": json.dumps("step log")}
    document["deployment"]["resources"] = resources
    document["deployment"].pop("secrets_providers")
    return document


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project as the workflow's checkout has it, outside the repository (a stack init writes
    Pulumi.<stack>.yaml next to Pulumi.yaml)."""
    root = tmp_path / "checkout"
    root.mkdir()
    spec = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    spec["runtime"]["options"]["virtualenv"] = str(REPO / ".venv")
    (root / "Pulumi.yaml").write_text(yaml.safe_dump(spec))
    for name in ("core", "steps", "components", "workflow", "tools", "__main__.py", "examples"):
        (root / name).symlink_to(REPO / name)
    # The template is the PR stack's --config-file; here without its KMS secrets provider (this
    # backend's stacks use a passphrase), and a copy, since the CLI writes the stack's key into it.
    template = yaml.safe_load((REPO / "Pulumi.preview.yaml").read_text())
    template.pop("secretsprovider", None)
    (root / "Pulumi.preview.yaml").write_text(yaml.safe_dump(template))
    return root


class Runner:
    def __init__(self, tmp_path: Path, project: Path, database: Database, aws: dict[str, str]):
        self.project = project
        self.backend = tmp_path / "backend"
        self.backend.mkdir()
        self.temp = tmp_path / "runner-temp"
        self.temp.mkdir()
        self.marker = tmp_path / "planted-delete-ran"
        self.env = engine_env(self.backend, PASSPHRASE, venv=REPO / ".venv")
        self.env.update(
            STACK=STACK,
            PULUMI_SECRETS_PROVIDER="passphrase",
            RUNNER_TEMP=str(self.temp),
            GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
            DATABASE_URL=database.url,
            # The step runs under the stack's DynamoDB lease (workflow.lease): moto's lock table.
            **aws_environment(aws["endpoint_url"]),
        )
        self.env.pop("ALERT_WEBHOOK_URL", None)

    def pulumi(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN_DIR / "pulumi"), *args], cwd=self.project, env=self.env, capture_output=True, text=True, timeout=300
        )

    def stored(self, document: dict) -> None:
        """The stack in the 'S3' backend with `document` as its state (what a preview's up wrote)."""
        path = self.temp.parent / "stored.json"
        result = self.pulumi("stack", "init", STACK, "--secrets-provider", "passphrase")
        assert result.returncode == 0, result.stdout + result.stderr
        # The new stack's own secrets provider (its passphrase salt), which encrypts the state's secrets.
        empty = self.pulumi("stack", "export", "--stack", STACK)
        assert empty.returncode == 0, empty.stderr
        secrets_providers = json.loads(empty.stdout)["deployment"]["secrets_providers"]
        document = {**document, "deployment": {**document["deployment"], "secrets_providers": secrets_providers}}
        path.write_text(json.dumps(document))
        result = self.pulumi("stack", "import", "--stack", STACK, "--file", str(path))
        assert result.returncode == 0, result.stdout + result.stderr

    def stacks(self) -> list[str]:
        result = self.pulumi("stack", "ls", "--json")
        assert result.returncode == 0, result.stderr
        return [s["name"].rsplit("/", 1)[-1] for s in json.loads(result.stdout)]

    def run_step(self, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", destroy_script()],
            cwd=self.project,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )


def schema_exists(database: Database) -> bool:
    with database.connect() as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone() is not None


@pytest.fixture
def runner(tmp_path: Path, project: Path, pg_database: Database, boto_kwargs: dict[str, str]) -> Runner:
    with pg_database.connect() as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(f"CREATE TABLE {SCHEMA}.items (id int)")
    boto3.client("dynamodb", **boto_kwargs).create_table(
        TableName=foundation_names("webstack", ACCOUNT_ID)["lock_table"],
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return Runner(tmp_path, project, pg_database, boto_kwargs)


def planted(document: dict, marker: Path) -> dict:
    entry = command(document, "database-schema")
    for part in ("inputs", "outputs"):
        entry[part]["delete"] = f"touch {marker}"
    return document


def test_a_genuine_state_is_destroyed(runner: Runner, pg_database: Database):
    runner.stored(schema_state())
    result = runner.run_step()
    assert result.returncode == 0, result.stdout + result.stderr
    assert not schema_exists(pg_database)  # the stored delete ran: steps.schema drop
    assert STACK not in runner.stacks()


def test_a_planted_delete_never_runs(runner: Runner, pg_database: Database):
    runner.stored(planted(schema_state(), runner.marker))
    result = runner.run_step()
    assert result.returncode != 0
    assert "not destroyed" in result.stderr and "database-schema" in result.stdout
    assert not runner.marker.exists()
    assert schema_exists(pg_database) and STACK in runner.stacks()


def test_the_preview_roles_state_objects_are_where_the_engine_writes(runner: Runner):
    # The deploy roles' S3 grants name the backend's paths: held against the files the real CLI
    # wrote for a PR stack (the file backend has the S3 one's layout), `s3://BUCKET/pulumi`.
    runner.stored(schema_state())
    destroyed = runner.pulumi("destroy", "--yes", "--stack", STACK)  # writes history and a backup
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    scope = DeployScope(project="webstack", account_id="123456789012", region="us-east-1",
                        state_bucket_arn="arn:aws:s3:::bucket", state_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
                        preview_key_arn="arn:aws:kms:us-east-1:123456789012:key/p", lease_key_arn="arn:aws:kms:us-east-1:123456789012:key/l",
                        artifacts_key_arn="arn:aws:kms:us-east-1:123456789012:key/a")
    written = [
        f"arn:aws:s3:::bucket/pulumi/{path.relative_to(runner.backend)}"
        for path in runner.backend.glob(".pulumi/**/*")
        if path.is_file() and path.suffix != ".attrs" and path.name != "meta.yaml" and ".pulumi-home" not in path.parts
    ]
    assert {"stacks", "history", "backups"} <= {arn.split("/.pulumi/")[1].split("/")[0] for arn in written}, written
    for arn in written:
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in state_objects(scope, PR_STACKS)), arn
        assert not any(fnmatch.fnmatchcase(arn, pattern) for pattern in state_objects(scope, "prod")), arn


def test_a_state_rewritten_after_the_check_is_not_what_runs(runner: Runner, pg_database: Database, tmp_path: Path):
    runner.stored(schema_state())
    # The 'attacker': once the check has passed, the stored state is swapped for a planted one.
    stored_file = next(runner.backend.glob(f".pulumi/stacks/*/{STACK}.json"))
    swapped = {"version": 3, "checkpoint": {"stack": f"organization/webstack/{STACK}", "latest": None}}
    original = json.loads(stored_file.read_text())
    swapped["checkpoint"] = original["checkpoint"] | {
        "latest": planted({"deployment": original["checkpoint"]["latest"]}, runner.marker)["deployment"]
    }
    shim = tmp_path / "shim"
    shim.mkdir()
    python = shim / "python"
    python.write_text(
        "#!/bin/bash\n"
        f'"{sys.executable}" "$@" || exit $?\n'
        'if [ "$1 $2" = "-m workflow.verify_state" ]; then\n'
        f"  cat > '{stored_file}' <<'STATE'\n{json.dumps(swapped)}\nSTATE\n"
        "fi\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    result = runner.run_step({"PATH": f"{shim}{os.pathsep}{runner.env['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert STACK not in runner.stacks()
    assert not runner.marker.exists()  # the checked copy's delete ran, not the planted one
    assert not schema_exists(pg_database)
    shutil.rmtree(shim)
