"""The resource model per stack, under the recording mocks: what exists, with which properties."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.aws_policies import GITHUB_OIDC_HOST
from tests.conftest import FIXTURE_APP

REPO = Path(__file__).resolve().parents[1]

FOUNDATION_TYPES = {
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:s3/bucket:Bucket",
    "aws:cloudtrail/trail:Trail",
    "aws:dynamodb/table:Table",
    "aws:kms/key:Key",
    "cloudflare:index/pagesProject:PagesProject",
}


def command(recording, name):
    return recording.by_name(name).inputs


def test_prod_owns_the_foundation(recorded):
    prod = recorded("prod")
    present = {r.type for r in prod.resources.values()}
    assert FOUNDATION_TYPES <= present
    assert len(prod.of_type("aws:s3/bucket:Bucket")) == 3  # state, trail logs, build artifacts
    [lifecycle] = prod.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
    # What PR stacks publish expires; prod's current objects stay (a later deploy may read them).
    assert rules["previews-expire"]["filter"] == {"prefix": "previews/"} and rules["previews-expire"]["expiration"]["days"] == 30
    assert "expiration" not in rules["replaced-versions-expire"]
    # four GitHub roles (prod, preview, cleanup, sweeper) + execution role + the role CloudTrail
    # assumes to write its log group
    assert len(prod.of_type("aws:iam/role:Role")) == 6


@pytest.mark.parametrize("stack", ["preview", "preview-pr-7"])
def test_previews_create_no_foundation(recorded, stack):
    present = {r.type for r in recorded(stack).resources.values()}
    assert not (FOUNDATION_TYPES & present)
    assert [r.name for r in recorded(stack).of_type("aws:iam/role:Role")] == ["api-role-role"]


def test_two_pr_stacks_have_disjoint_physical_names(recorded):
    from tests.conftest import record

    def physical(recording):
        names = set()
        for resource in recording.resources.values():
            inputs = resource.inputs
            for key in ("name", "bucket"):
                if isinstance(inputs.get(key), str):
                    names.add(inputs[key])
            environment = inputs.get("environment") or {}
            names |= {environment[k] for k in ("DB_SCHEMA", "PAGES_BRANCH", "DNS_NAME") if k in environment}
        return names

    seven, eight = physical(recorded("preview-pr-7")), physical(record("preview-pr-8"))
    assert {"webstack-api-preview-pr-7", "app_preview_pr_7", "pr-7", "pr-7.app.example.com"} <= seven
    assert seven.isdisjoint(eight), seven & eight


def test_state_bucket_is_versioned_encrypted_private_and_tls_only(recorded):
    prod = recorded("prod")
    assert prod.by_name("state-storage-bucket").inputs["bucket"] == "webstack-pulumi-state-123456789012"
    assert prod.by_name("state-storage-versioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    rule = prod.by_name("state-storage-encryption").inputs["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].startswith("arn:aws:kms:")
    block = prod.by_name("state-storage-public-access-block").inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert prod.by_name("state-storage-ownership").inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    policy = json.loads(prod.by_name("state-storage-policy").inputs["policy"])
    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny" and "aws:SecureTransport" in str(s.get("Condition"))]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Action"] == "s3:*" and deny["Principal"] == "*"


def test_keys_rotate_and_stateful_resources_are_protected(recorded):
    prod = recorded("prod")
    for key in prod.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True, key.name
        assert key.protect and key.retain_on_delete, key.name
    for bucket in prod.of_type("aws:s3/bucket:Bucket"):
        assert bucket.protect and bucket.retain_on_delete, bucket.name
    table = prod.by_name("state-locks")
    assert table.protect and table.inputs["pointInTimeRecovery"] == {"enabled": True}
    assert table.inputs["serverSideEncryption"]["enabled"] is True
    assert prod.by_name("pages-project").protect
    assert prod.by_name("database-schema").protect


def test_the_trail_is_multi_region_validated_and_encrypted(recorded):
    trail = recorded("prod").by_name("audit-trail").inputs
    assert trail["isMultiRegionTrail"] and trail["enableLogFileValidation"] and trail["includeGlobalServiceEvents"]
    assert trail["kmsKeyId"].startswith("arn:aws:kms:")
    assert trail["s3BucketName"] == "webstack-audit-123456789012"


def test_the_trail_feeds_alarms_on_anomalies_to_an_encrypted_topic(recorded):
    from tests.conftest import record

    prod = recorded("prod")
    trail = prod.by_name("audit-trail").inputs
    group = prod.by_name("audit-log-group")
    assert trail["cloudWatchLogsGroupArn"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/cloudtrail/webstack-audit:*"
    )
    assert trail["cloudWatchLogsRoleArn"] == "arn:aws:iam::123456789012:role/webstack-audit-cloudwatch"
    assert group.inputs["retentionInDays"] == 365 and group.inputs["kmsKeyId"].startswith("arn:aws:kms:")
    assert group.protect
    topic = prod.by_name("audit-alerts").inputs
    assert topic["kmsMasterKeyId"] == prod.by_name("audit-key").outputs["arn"]
    alarms = {r.name: r.inputs for r in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarms) == {"audit-console-login-without-mfa-alarm", "audit-iam-policy-change-alarm"}
    for alarm in alarms.values():
        assert alarm["alarmActions"] == ["arn:aws:sns:us-east-1:123456789012:webstack-alerts"]
    pattern = prod.by_name("audit-iam-policy-change").inputs["pattern"]
    assert '!= "webstack-deploy-prod"' in pattern and '!= "webstack-deploy-preview"' in pattern
    assert "audit-alerts-email" not in prod.names()  # no address configured
    mailed = record("prod", alertEmail="ops@example.com").by_name("audit-alerts-email").inputs
    assert (mailed["protocol"], mailed["endpoint"]) == ("email", "ops@example.com")


def trust(recording, role):
    return json.loads(recording.by_name(f"github-{role}-role").inputs["assumeRolePolicy"])


@pytest.mark.parametrize(
    ("role", "subjects"),
    [
        # Pulumi.prod.yaml: the deploy job runs in `production`, preview and cleanup in `preview`.
        ("prod", ["repo:org/repo:environment:production"]),
        ("preview", ["repo:org/repo:environment:preview"]),
        ("cleanup", ["repo:org/repo:environment:preview"]),
        # Only the sweeper's own environment: never main's subject, never the previews'.
        ("sweeper", ["repo:org/repo:environment:preview-sweeper"]),
    ],
)
def test_deploy_roles_trust_exact_subjects_with_the_sts_audience(recorded, role, subjects):
    [statement] = trust(recorded("prod"), role)["Statement"]
    assert statement["Principal"]["Federated"] == f"arn:aws:iam::123456789012:oidc-provider/{GITHUB_OIDC_HOST}"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com", f"{GITHUB_OIDC_HOST}:sub": subjects}
    }


def test_subject_format_is_configurable_for_immutable_claims():
    from tests.conftest import record

    prod = record("prod", githubSubjectPrefix="repo:org@1234/repo@5678", githubProdEnvironment="production")
    [statement] = trust(prod, "prod")["Statement"]
    assert statement["Condition"]["StringEquals"][f"{GITHUB_OIDC_HOST}:sub"] == [
        "repo:org@1234/repo@5678:environment:production",
    ]


@pytest.mark.parametrize(
    ("overrides", "role", "subjects"),
    [
        # Without an environment: `main`'s jobs, every pull_request job.
        ({"githubProdEnvironment": ""}, "prod", ["repo:org/repo:ref:refs/heads/main"]),
        ({"githubPreviewEnvironment": ""}, "preview", ["repo:org/repo:pull_request"]),
        ({"githubPreviewEnvironment": ""}, "cleanup", ["repo:org/repo:pull_request"]),
        # An environment replaces the branch's or event's subject, it does not add to it.
        ({"githubProdEnvironment": "release"}, "prod", ["repo:org/repo:environment:release"]),
    ],
)
def test_a_deploy_role_trusts_its_environment_instead_of_the_branch_or_event(overrides, role, subjects):
    from tests.conftest import record

    [statement] = trust(record("prod", **overrides), role)["Statement"]
    assert statement["Condition"]["StringEquals"][f"{GITHUB_OIDC_HOST}:sub"] == subjects


def test_without_a_sweeper_environment_there_is_no_sweeper_role():
    from tests.conftest import record

    prod = record("prod", githubSweeperEnvironment="")
    assert "github-sweeper-role" not in prod.names() and "github-sweeper-policy" not in prod.names()
    assert "sweeperRoleArn" not in prod.exports


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"githubProdEnvironment": "prod*"}, "`githubProdEnvironment` 'prod*' is not a GitHub environment name"),
        ({"githubPreviewEnvironment": "a:b"}, "`githubPreviewEnvironment` 'a:b' is not a GitHub environment name"),
        ({"githubPreviewEnvironment": "production"}, "`githubProdEnvironment` must be an environment of its own"),
    ],
)
def test_environment_names_are_checked(overrides, expected):
    from components.settings import SettingsError
    from tests.conftest import record

    with pytest.raises(SettingsError) as error:
        record("prod", **overrides)
    assert expected in str(error.value)


def test_oidc_provider_audience(recorded):
    provider = recorded("prod").by_name("github-provider").inputs
    assert provider["url"] == f"https://{GITHUB_OIDC_HOST}"
    assert provider["clientIdLists"] == ["sts.amazonaws.com"]


def test_prod_publishes_and_points_stable_at_the_new_version(recorded):
    prod = recorded("prod")
    function = prod.by_name("api-function")
    assert function.inputs["publish"] is True
    alias = prod.by_name("api-alias").inputs
    assert alias["name"] == "stable"
    assert alias["functionVersion"] == function.outputs["version"]
    assert function.outputs["version"].isdigit()
    assert prod.by_name("api-url").inputs["qualifier"] == "stable"
    assert prod.exports["stableVersion"] == function.outputs["version"]


def test_pinned_version_rolls_stable_back_without_touching_the_build(recorded):
    from tests.conftest import record

    pinned = record("prod", pinnedVersion="3")
    assert pinned.by_name("api-alias").inputs["functionVersion"] == "3"
    assert pinned.by_name("api-verify-alias").inputs["environment"]["FUNCTION_VERSION"] == "3"
    assert pinned.by_name("api-build").inputs == recorded("prod").by_name("api-build").inputs


@pytest.mark.parametrize("stack", ["preview", "preview-pr-7"])
def test_previews_run_latest_with_their_own_schema(recorded, stack):
    recording = recorded(stack)
    function = recording.by_name("api-function").inputs
    assert function["publish"] is False
    assert function["environment"]["variables"]["DB_SCHEMA"] == recording.exports["dbSchema"]
    assert "api-alias" not in recording.names()
    assert "api-verify-alias" not in recording.names() and "api-prune-versions" not in recording.names()
    assert recording.by_name("api-url").inputs.get("qualifier") is None


@pytest.mark.parametrize(("stack", "prefix"), [("prod", "prod"), ("preview-pr-7", "previews/preview-pr-7")])
def test_function_takes_its_code_from_the_published_build(recorded, stack, prefix):
    """No deploy needs the build's files: the function's code is the pinned object the build
    published (its record on stdout), never the build Command's `archive` (a refresh empties it)."""
    recording = recorded(stack)
    build = recording.by_name("api-build")
    function = recording.by_name("api-function")
    record = json.loads(build.outputs["stdout"])
    assert (function.inputs["s3Bucket"], function.inputs["s3Key"], function.inputs["s3ObjectVersion"]) == (
        record["bucket"], record["key"], record["version"]
    )
    for key in ("s3Bucket", "s3Key", "s3ObjectVersion"):
        assert build.urn in function.property_dependencies[key]
    assert "code" not in function.inputs and "archivePaths" not in build.inputs
    assert function.inputs["environment"]["variables"]["APP_VERSION"] == record["sha256"]
    environment = build.inputs["environment"]
    assert (environment["ARTIFACTS_BUCKET"], environment["ARTIFACTS_PREFIX"]) == ("webstack-artifacts-123456789012", prefix)
    assert build.inputs["create"].endswith('--artifacts-bucket "$ARTIFACTS_BUCKET" --artifacts-prefix "$ARTIFACTS_PREFIX"')
    assert function.inputs["handler"] == "dist/index.handler"
    assert function.inputs["runtime"] == "nodejs20.x"
    if stack == "prod":  # prod's first build waits for the bucket its own foundation creates
        assert recording.by_name("artifacts-storage-bucket").urn in build.property_dependencies["environment"]


def test_no_command_exposes_files_to_read_later(recorded):
    for stack in ("prod", "preview-pr-7"):
        for resource in recorded(stack).of_type("command:local:Command"):
            assert not {"archivePaths", "assetPaths"} & set(resource.inputs), resource.name


@pytest.mark.parametrize("stack", ["prod", "preview-pr-7"])
def test_the_site_deploy_deploys_the_builds_record(recorded, stack):
    recording = recorded(stack)
    build, deploy = recording.by_name("site-build"), command(recording, "site-deploy")
    assert deploy["environment"]["SITE_ARTIFACT"] == build.outputs["stdout"]
    assert deploy["triggers"] == [build.outputs["stdout"]]
    assert '--artifact "$SITE_ARTIFACT"' in deploy["create"]


def test_function_url_is_public_but_cors_admits_only_the_site(recorded):
    for stack, origin in (("prod", "https://app.example.com"), ("preview-pr-7", "https://pr-7.app.example.com")):
        url = recorded(stack).by_name("api-url").inputs
        assert url["authorizationType"] == "NONE"
        assert url["cors"]["allowOrigins"] == [origin]




@pytest.mark.parametrize("stack", ["prod", "preview", "preview-pr-7"])
def test_commands_run_the_steps_with_values_only_in_environment(recorded, stack):
    recording = recorded(stack)
    commands = recording.of_type("command:local:Command")
    assert commands
    for resource in commands:
        inputs = resource.inputs
        assert inputs.get("dir"), f"{resource.name} has no dir"
        assert not inputs["dir"].startswith("/"), f"{resource.name}: absolute dir differs between machines"
        for text in filter(None, (inputs.get("create"), inputs.get("delete"))):
            assert text.startswith("python -m steps."), text
            for value in inputs.get("environment", {}).values():
                if len(str(value)) > 3:
                    assert str(value) not in text, f"{resource.name}: value {value!r} interpolated"


def _step_help(module_and_action: tuple[str, ...]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *module_and_action, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow  # starts every step's --help in a subprocess (about 10 s)
def test_every_step_runs_on_the_stacks_app_dir_only(recorded):
    # conftest deploys tests/fixtures/app (`appDir`): no Command, and no step it runs, may fall
    # back to the default workspace.
    helps: dict[tuple[str, ...], str] = {}
    for stack in ("prod", "preview-pr-7"):
        recording = recorded(stack)
        for resource in recording.of_type("command:local:Command"):
            inputs = resource.inputs
            assert "examples/app" not in json.dumps(inputs), resource.name
            for text in filter(None, (inputs.get("create"), inputs.get("delete"))):
                words = shlex.split(text)
                module_and_action = tuple(words[2:4] if len(words) > 3 and not words[3].startswith("-") else words[2:3])
                if module_and_action not in helps:
                    helps[module_and_action] = _step_help(module_and_action)
                if "--app-dir" not in helps[module_and_action]:
                    continue
                assert '--app-dir "$APP_DIR"' in text, f"{resource.name} does not pass the stack's app directory"
                app_dir = os.path.normpath(os.path.join(inputs["dir"], inputs["environment"]["APP_DIR"]))
                assert app_dir == FIXTURE_APP, f"{resource.name} runs on {app_dir}"
    # The steps that take an app directory have no default of their own to fall back to.
    assert sum("--app-dir" in text for text in helps.values()) >= 4
    for module_and_action, text in helps.items():
        if "--app-dir" in text:
            proc = subprocess.run(
                [sys.executable, "-m", *module_and_action], cwd=REPO, capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 2 and "--app-dir" in proc.stderr, module_and_action


@pytest.mark.parametrize("stack", ["prod", "preview-pr-7"])
def test_every_command_stores_its_log_as_a_secret_and_its_result_plain(recorded, stack):
    # stderr is the step's log: a secret output in state, a second guard behind the masking.
    # stdout carries hashes and deployment ids that other Commands read, so it must stay plain.
    for resource in recorded(stack).of_type("command:local:Command"):
        assert "stderr" in resource.secret_outputs, resource.name
        assert "stdout" not in resource.secret_outputs, resource.name


def test_migration_flags_per_stack(recorded):
    base = (
        'python -m steps.migrate --app-dir "$APP_DIR" --schema "$DB_SCHEMA" --timeout "$MIGRATION_TIMEOUT"'
        ' --schema-dir "$SCHEMA_DIR" --drizzle-config "$DRIZZLE_CONFIG"'
    )
    assert command(recorded("prod"), "database-migrate")["create"] == base
    assert command(recorded("preview-pr-7"), "database-migrate")["create"] == base + " --allow-data-loss"
    environment = command(recorded("preview-pr-7"), "database-migrate")["environment"]
    assert environment == {
        "DB_SCHEMA": "app_preview_pr_7",
        "APP_DIR": "tests/fixtures/app",
        "MIGRATION_TIMEOUT": "120",
        "SCHEMA_DIR": "packages/shared-schemas",
        "DRIZZLE_CONFIG": "drizzle.config.ts",
    }


def test_prod_approves_one_data_loss_by_its_digest():
    from components.settings import SettingsError
    from tests.conftest import record

    base = (
        'python -m steps.migrate --app-dir "$APP_DIR" --schema "$DB_SCHEMA" --timeout "$MIGRATION_TIMEOUT"'
        ' --schema-dir "$SCHEMA_DIR" --drizzle-config "$DRIZZLE_CONFIG"'
    )
    migrate = command(record("prod", approveDataLoss="0123456789abcdef"), "database-migrate")
    assert migrate["create"] == base + ' --approve-data-loss "$APPROVE_DATA_LOSS"'
    assert migrate["environment"]["APPROVE_DATA_LOSS"] == "0123456789abcdef"
    for stack, value in (("prod", "yes"), ("prod", "true"), ("preview-pr-7", "0123456789abcdef")):
        with pytest.raises(SettingsError) as error:
            record(stack, approveDataLoss=value)
        assert "`approveDataLoss`" in str(error.value) and "only prod approves data loss" in str(error.value)


def test_only_pr_stacks_drop_their_schema_and_branch_on_destroy(recorded):
    """And only what their own create claimed: a replaced Command (create-before-delete) finds
    its successor's claim and removes nothing live."""
    pr = recorded("preview-pr-7")
    schema = command(pr, "database-schema")
    assert schema["create"] == 'python -m steps.schema create --schema "$DB_SCHEMA" --claim'
    assert schema["delete"] == 'python -m steps.schema drop --schema "$DB_SCHEMA" --claimed'
    claim = '--project "$PAGES_PROJECT" --branch "$PAGES_BRANCH" --artifacts-bucket "$ARTIFACTS_BUCKET" --artifacts-prefix "$ARTIFACTS_PREFIX"'
    cleanup = command(pr, "site-branch-cleanup")
    assert cleanup["create"] == f"python -m steps.pages claim-branch {claim}"
    assert cleanup["delete"] == f"python -m steps.pages delete-branch {claim} --claimed"
    assert cleanup["environment"]["PAGES_BRANCH"] == "pr-7"
    assert cleanup["environment"]["ARTIFACTS_PREFIX"] == "previews/preview-pr-7"
    for stack in ("prod", "preview"):
        assert "delete" not in command(recorded(stack), "database-schema")
        assert "--claim" not in command(recorded(stack), "database-schema")["create"]
        assert "site-branch-cleanup" not in recorded(stack).names()


def test_a_replaced_preview_deploy_deletes_only_its_own_deployment(recorded):
    deploy = command(recorded("preview-pr-7"), "site-deploy")
    assert deploy["delete"] == 'python -m steps.pages delete --project "$PAGES_PROJECT" --deployment-from-stdout'
    # Re-run in place (an update): the same deploy, then the deployment its previous run recorded goes.
    assert deploy["update"] == deploy["create"] + " --delete-previous"
    prod = command(recorded("prod"), "site-deploy")
    assert "delete" not in prod and "update" not in prod  # prod keeps deployments for rollback


TRIGGERED = ("app-install", "database-migrate", "api-build", "site-build")


def _triggers(app: Path) -> dict[str, list]:
    from tests.conftest import record

    recording = record("prod", appDir=str(app))
    return {name: command(recording, name)["triggers"] for name in TRIGGERED}


@pytest.mark.parametrize(
    ("changed_file", "reruns"),
    [
        ("package-lock.json", set(TRIGGERED)),
        ("packages/shared-schemas/src/schema.ts", {"database-migrate", "api-build", "site-build"}),
        ("apps/api/src/handler.ts", {"api-build"}),
        ("apps/web/app/page.tsx", {"site-build"}),
        ("README.md", set()),  # in the workspace, but in no step's sources
    ],
)
def test_each_trigger_covers_exactly_the_files_its_step_reads(tmp_path, changed_file, reruns):
    app = tmp_path / "app"
    shutil.copytree(REPO / FIXTURE_APP, app)
    before = _triggers(app)
    with (app / changed_file).open("a") as f:
        f.write("\n// touched\n")
    after = _triggers(app)
    assert {name for name in TRIGGERED if before[name] != after[name]} == reruns


def test_version_steps_verify_then_prune(recorded):
    prod = recorded("prod")
    verify = command(prod, "api-verify-alias")
    assert verify["create"] == (
        'python -m steps.lambda_versions verify-alias --function "$FUNCTION_NAME" --alias "$ALIAS_NAME"'
        ' --version "$FUNCTION_VERSION"'
    )
    assert verify["environment"]["FUNCTION_NAME"] == "webstack-api-prod"
    prune = prod.by_name("api-prune-versions")
    assert prune.inputs["environment"]["KEEP_VERSIONS"] == "5"
    # Old versions go only after the new one answered its health check (a rollback needs them).
    assert prod.by_name("checks-api-health").urn in prune.dependencies
    assert prod.by_name("api-verify-alias").urn in prod.ancestors(prune.urn)


def test_stable_moves_only_behind_the_pre_traffic_check_of_the_new_version(recorded):
    prod = recorded("prod")
    check = prod.by_name("api-pre-traffic-check")
    assert check.inputs["create"] == (
        'python -m steps.promote check --function "$FUNCTION_NAME" --qualifier "$FUNCTION_VERSION"'
        ' --expect-version "$APP_VERSION" --health-path "$HEALTH_PATH" --mask-variables "$MASKED_VARIABLES"'
    )
    environment = check.inputs["environment"]
    function = prod.by_name("api-function")
    assert environment["FUNCTION_VERSION"] == function.outputs["version"]
    assert environment["APP_VERSION"] == json.loads(prod.by_name("api-build").outputs["stdout"])["sha256"]
    assert environment["FUNCTION_NAME"] == "webstack-api-prod"
    # The alias waits for the check; the check for the function (the version it proves).
    alias = prod.by_name("api-alias")
    assert check.urn in alias.dependencies
    assert function.urn in prod.ancestors(check.urn)
    assert check.urn in prod.ancestors(prod.by_name("api-url").urn)


def test_a_pinned_rollback_skips_the_check_of_a_version_that_has_served(recorded):
    from tests.conftest import record

    pinned = record("prod", pinnedVersion="3")
    assert "api-pre-traffic-check" not in pinned.names()
    assert "api-pre-traffic-check" in recorded("prod").names()


def test_the_optional_canary_sits_between_the_check_and_the_alias(recorded):
    from tests.conftest import record

    assert "api-canary" not in recorded("prod").names()
    canary = record("prod", canaryPercent=10, canarySeconds=30)
    step = canary.by_name("api-canary")
    assert step.inputs["create"] == (
        'python -m steps.promote canary --function "$FUNCTION_NAME" --alias "$ALIAS_NAME"'
        ' --version "$FUNCTION_VERSION" --weight "$CANARY_PERCENT" --seconds "$CANARY_SECONDS"'
        ' --health-path "$HEALTH_PATH" --mask-variables "$MASKED_VARIABLES"'
    )
    environment = step.inputs["environment"]
    assert (environment["CANARY_PERCENT"], environment["CANARY_SECONDS"], environment["ALIAS_NAME"]) == ("10", "30", "stable")
    assert environment["FUNCTION_VERSION"] == canary.by_name("api-function").outputs["version"]
    assert canary.by_name("api-pre-traffic-check").urn in step.dependencies
    assert step.urn in canary.by_name("api-alias").dependencies
    assert "api-canary" not in record("prod", canaryPercent=10, pinnedVersion="3").names()


@pytest.mark.parametrize("stack", ["preview", "preview-pr-7"])
def test_previews_check_latest_through_their_url_before_the_site_deploys(recorded, stack):
    recording = recorded(stack)
    check = recording.by_name("api-pre-traffic-check")
    assert check.inputs["create"] == (
        'python -m steps.promote check --url "$API_URL" --expect-version "$APP_VERSION"'
        ' --health-path "$HEALTH_PATH" --mask-function "$FUNCTION_NAME" --mask-variables "$MASKED_VARIABLES"'
    )
    assert check.inputs["environment"]["API_URL"] == recording.by_name("api-url").outputs["functionUrl"]
    assert check.inputs["environment"]["DEPLOYED"] == recording.by_name("api-function").outputs["lastModified"]
    assert check.urn in recording.ancestors(recording.by_name("site-deploy").urn)


def test_checks_are_critical_in_prod_only(recorded):
    assert "--non-critical" not in command(recorded("prod"), "checks-dns")["create"]
    assert command(recorded("preview-pr-7"), "checks-dns")["create"].endswith("--non-critical")
    environment = command(recorded("preview-pr-7"), "checks-dns")["environment"]
    assert environment["DNS_NAME"] == "pr-7.app.example.com"
    assert environment["DNS_EXPECT"] == "pr-7.webstack-site.pages.dev"
    api = command(recorded("prod"), "checks-api-health")["environment"]
    assert api["HEALTH_URL"] == recorded("prod").exports["apiUrl"] + "health"


def test_dns_record_is_a_dns_only_cname_to_pages(recorded):
    record_inputs = recorded("prod").by_name("site-domain-record").inputs
    assert (record_inputs["type"], record_inputs["name"], record_inputs["content"]) == (
        "CNAME",
        "app.example.com",
        "webstack-site.pages.dev",
    )
    assert record_inputs["proxied"] is False and record_inputs["ttl"] == 300


def test_every_aws_resource_uses_the_explicit_regional_provider(recorded):
    recording = recorded("preview-pr-7")
    [provider] = recording.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-east-1"
    # Provider inputs arrive JSON-encoded.
    assert json.loads(provider.inputs["defaultTags"])["tags"]["stack"] == "preview-pr-7"
