"""steps.pages: the real wrangler 4.86.0 against the Cloudflare stand-in, and delete/delete-branch.

The stand-in (sandbox/cloudflare_api.py) speaks the v4 endpoints wrangler's `pages deploy`
calls; the deploy tests run wrangler itself (slow tier), the delete tests only need the API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steps import artifacts
from core.source_hash import output_hash
from steps.build_site import files_of
from steps.pages import deployment_id_from_stdout, error_codes, production_ids, response_statuses
from steps.runtime import PermanentError
from sandbox.cloudflare_api import ACCOUNT, TOKEN, CloudflareStub, cloudflare, error  # noqa: F401 - fixture
from tests.support.http_stub import Reply
from tests.support.moto import ARTIFACTS_BUCKET, artifacts_bucket, aws_env, moto_server  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
APP = "examples/app"
WRANGLER = REPO / APP / "node_modules/.bin/wrangler"
PROJECT = "webstack-site"
DEPLOYMENTS = "/deployments$"


def pages(cf: CloudflareStub, *args: str, token: str = TOKEN, **env: str) -> subprocess.CompletedProcess[str]:
    child = {
        **os.environ,
        "CLOUDFLARE_API_BASE_URL": cf.api_base,
        "CLOUDFLARE_API_TOKEN": token,
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "steps.pages", *args], cwd=REPO, env=child, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "_next/static").mkdir(parents=True)
    (root / "index.html").write_text('<html><body data-api="https://api.example.test/">pr-7</body></html>')
    (root / "404.html").write_text("<html>not found</html>")
    (root / "_next/static/app.js").write_text('const API="https://api.example.test/";')
    return root


PREFIX = "previews/preview-pr-7"
PUBLISH = ("--artifacts-bucket", ARTIFACTS_BUCKET, "--artifacts-prefix", PREFIX)


def record_of(site: Path) -> str:
    """The record a site build prints for `site` (its object need not exist while `--dir` holds
    exactly that tree: the deploy then never reads the bucket)."""
    tarball = artifacts.deterministic_tarball(site, files_of(site))
    sha = artifacts.sha256_hex(tarball)
    return json.dumps(
        {"sha256": output_hash(site), "bucket": ARTIFACTS_BUCKET, "key": f"{PREFIX}/site/{sha}.tar.gz", "version": "v0",
         "object_sha256": sha}
    )  # fmt: skip


def deploy(
    cf: CloudflareStub, site: Path, branch: str = "pr-7", *, record: str | None = None, flags: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    return pages(
        cf, "deploy", "--project", PROJECT, "--branch", branch, "--dir", str(site), "--artifact", record or record_of(site),
        "--app-dir", APP, *flags, **env,
    )  # fmt: skip


def wrangler_runs(cf: CloudflareStub) -> int:
    """Each wrangler run starts with the upload token."""
    return sum(1 for c in cf.calls() if c == "GET /P/upload-token") // 2


# --- pure pieces ----------------------------------------------------------------------------


def test_statuses_and_codes_from_wrangler_output():
    output = (
        "-- START CF API RESPONSE: OK 200\n"
        "\x1b[1m-- START CF API RESPONSE: Too Many Requests 429\x1b[0m\n"
        "  Please wait and consider throttling your request speed [code: 971]\n"
    )
    assert response_statuses(output) == [200, 429]
    assert error_codes(output, [{"type": "command-failed", "code": 10046}]) == [971, 10046]


def test_deployment_id_from_the_deploy_stdout():
    stdout = json.dumps({"id": "abc-123", "url": "https://abc.p.pages.dev", "alias": None}) + "\n"
    assert deployment_id_from_stdout(stdout) == "abc-123"
    for bad in ("", "not json", json.dumps({"skipped": True})):
        with pytest.raises(PermanentError):
            deployment_id_from_stdout(bad)


def test_production_ids():
    project = {
        "production_branch": "main",
        "canonical_deployment": {"id": "prod-1"},
        "latest_deployment": {"id": "pr-9", "environment": "preview", "deployment_trigger": {"metadata": {"branch": "pr-9"}}},
    }
    assert production_ids(project) == {"prod-1"}
    project["latest_deployment"] = {"id": "prod-2", "deployment_trigger": {"metadata": {"branch": "main"}}}
    assert production_ids(project) == {"prod-1", "prod-2"}


# --- deploy with the real wrangler ----------------------------------------------------------


@pytest.mark.slow
def test_deploy_uploads_the_site_to_its_branch_and_prints_the_deployment(cloudflare, site):
    started = time.monotonic()
    result = deploy(cloudflare, site)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    [deployment] = cloudflare.deployments.values()
    assert out == {
        "id": deployment.id,
        "url": f"https://{deployment.id[:8]}.{PROJECT}.pages.dev",
        "alias": f"https://pr-7.{PROJECT}.pages.dev",
        "project": PROJECT,
        "branch": "pr-7",
    }
    # What arrived: the branch, and every file of the site with its bytes.
    assert deployment.branch == "pr-7" and deployment.environment == "preview"
    assert sorted(deployment.manifest) == ["/404.html", "/_next/static/app.js", "/index.html"]
    assert cloudflare.assets[deployment.manifest["/index.html"]] == (site / "index.html").read_bytes()
    calls = cloudflare.calls()
    for call in ("GET /P", "GET /P/upload-token", "POST /pages/assets/check-missing", "POST /pages/assets/upload",
                 "POST /pages/assets/upsert-hashes", "POST /P/deployments", f"GET /P/deployments/{deployment.id}"):
        assert call in calls
    # The step confirmed the deployment itself after wrangler did.
    assert calls[-1] == f"GET /P/deployments/{deployment.id}"
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in cloudflare.requests if "/accounts/" in r.path)
    assert TOKEN not in result.stderr + result.stdout
    print(f"wrangler deploy against the stand-in: {elapsed:.1f}s")


@pytest.mark.slow
def test_transient_faults_are_retried_until_the_deploy_succeeds(cloudflare, site):
    cloudflare.fault(
        "POST",
        DEPLOYMENTS,
        Reply(503, body="<html>503 Service Temporarily Unavailable</html>"),
        error(429, 971, "Please wait and consider throttling your request speed", {"Retry-After": "30"}),
        error(500, 10046, "An internal error occurred"),
    )
    started = time.monotonic()
    result = deploy(cloudflare, site, STEPS_RETRY_SCALE="0.01")
    assert result.returncode == 0, result.stderr
    assert wrangler_runs(cloudflare) == 4
    assert len(cloudflare.deployments) == 1
    log = result.stderr
    assert "attempt 1 of 5 failed: wrangler pages deploy failed: Received a malformed response from the API (HTTP 503" in log
    assert "attempt 2 of 5 failed" in log and "HTTP 429; Cloudflare codes 971" in log
    assert "attempt 3 of 5 failed" in log and "HTTP 500; Cloudflare codes 10046" in log
    assert "step pages-deploy: ok" in log
    assert time.monotonic() - started < 120


@pytest.mark.slow
def test_retry_after_of_a_rate_limit_is_honoured(cloudflare, site):
    limited = error(429, 971, "Please wait and consider throttling your request speed", {"Retry-After": "100"})


    def rate_limited(request):
        # From now on the account is limited: the step's next request (its probe) gets it too.
        cloudflare.fault("GET", rf"/projects/{PROJECT}$", limited)
        return limited

    cloudflare.fault("POST", DEPLOYMENTS, rate_limited)
    result = deploy(cloudflare, site, STEPS_RETRY_SCALE="0.01")
    assert result.returncode == 0, result.stderr
    # 100 s scaled by 0.01: the wait is the server's, not the 20 ms backoff.
    assert "next wait 1.0s" in result.stderr


@pytest.mark.slow
def test_a_bad_token_fails_at_once(cloudflare, site, steps_env):
    result = deploy(cloudflare, site, token="not-the-token")
    assert result.returncode == 1
    assert wrangler_runs(cloudflare) == 0 and cloudflare.calls().count("GET /P") == 1
    assert "not retrying (permanent)" in result.stderr
    assert "FAILED pages-deploy" in result.stderr and "API token is not valid" in result.stderr
    assert "not-the-token" not in result.stderr
    assert not cloudflare.deployments


@pytest.mark.slow
def test_an_unknown_project_fails_at_once(cloudflare, site):
    result = pages(
        cloudflare, "deploy", "--project", "no-such-project", "--branch", "pr-7", "--dir", str(site),
        "--artifact", record_of(site), "--app-dir", APP,
    )  # fmt: skip
    assert result.returncode == 1
    assert "not retrying (permanent)" in result.stderr and "Pages project does not exist" in result.stderr


@pytest.mark.slow
def test_intermittent_auth_error_with_a_valid_token_is_retried(cloudflare, site):
    cloudflare.fault("POST", DEPLOYMENTS, error(403, 10000, "Authentication error"))
    result = deploy(cloudflare, site, STEPS_RETRY_SCALE="0.01")
    assert result.returncode == 0, result.stderr
    assert "Cloudflare's intermittent auth error" in result.stderr
    assert len(cloudflare.deployments) == 1


@pytest.mark.slow
def test_an_unconfirmed_deploy_is_checked_through_the_api(cloudflare, site):
    # wrangler polls once, sees the deploy stage still active, says it "couldn't ascertain the
    # final status" and exits 0; the step keeps asking until the stage succeeded.
    cloudflare.stages = [{"name": "deploy", "status": "active"}] * 3
    result = deploy(cloudflare, site, STEPS_RETRY_SCALE="0.01")
    assert result.returncode == 0, result.stderr
    assert "couldn't ascertain the final status" in result.stderr
    [deployment] = cloudflare.deployments.values()
    gets = [c for c in cloudflare.calls() if c == f"GET /P/deployments/{deployment.id}"]
    assert len(gets) == 4  # 1 by wrangler, 2 still active, 1 success
    assert json.loads(result.stdout)["id"] == deployment.id


@pytest.mark.slow
def test_a_deploy_that_never_completes_fails(cloudflare, site):
    cloudflare.stages = [{"name": "deploy", "status": "active"}] * 1000
    result = deploy(cloudflare, site, STEPS_RETRY_SCALE="0.01")
    assert result.returncode == 1
    assert "could not confirm deployment" in result.stderr


# --- delete and delete-branch (API only) ----------------------------------------------------


def test_delete_branch_removes_exactly_that_branchs_deployments_across_pages(cloudflare):
    prod = [cloudflare.add_deployment("main") for _ in range(3)]
    mine = [cloudflare.add_deployment("pr-7") for _ in range(24)]
    others = [cloudflare.add_deployment(b) for b in ("pr-8", "pr-70", "pr-7-fix", "feature/pr-7") * 4]
    assert len(cloudflare.deployments) == 3 + 24 + 16  # 2 pages of 25
    for _ in range(10):
        mine.append(cloudflare.add_deployment("pr-7"))
    assert len(cloudflare.deployments) == 53  # 3 pages
    result = pages(cloudflare, "delete-branch", "--project", PROJECT, "--branch", "pr-7")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["deleted"]) == sorted(d.id for d in mine)
    assert sorted(cloudflare.deleted) == sorted((d.id, True) for d in mine)  # each with force=true
    assert sorted(cloudflare.deployments) == sorted(d.id for d in prod + others)
    pages_read = sorted(int(r.query["page"][0]) for r in cloudflare.requests if r.method == "GET" and r.path.endswith("/deployments"))
    assert pages_read == [1, 2, 3]
    # Again: nothing left to delete, still a success.
    again = pages(cloudflare, "delete-branch", "--project", PROJECT, "--branch", "pr-7")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["deleted"] == []
    assert len(cloudflare.deployments) == 3 + 16


def test_delete_branch_refuses_the_production_branch(cloudflare, steps_env):
    prod = cloudflare.add_deployment("main")
    result = pages(cloudflare, "delete-branch", "--project", PROJECT, "--branch", "main")
    assert result.returncode == 0  # non-critical: warned and recorded
    assert json.loads(result.stdout)["skipped"] is True
    assert "refusing to delete the deployments of main" in result.stderr
    assert prod.id in cloudflare.deployments and not cloudflare.deleted
    assert "refusing" in steps_env.skip_log.read_text()


def test_delete_by_the_id_the_deploy_printed(cloudflare):
    old, new = cloudflare.add_deployment("pr-7"), cloudflare.add_deployment("pr-7")
    stdout = json.dumps({"id": old.id, "url": old.url(), "alias": None, "project": PROJECT, "branch": "pr-7"})
    result = pages(cloudflare, "delete", "--project", PROJECT, "--deployment-from-stdout", PULUMI_COMMAND_STDOUT=stdout + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"project": PROJECT, "deployment": old.id, "deleted": True}
    # create-before-delete: the replacement's deployment of the same branch stays.
    assert cloudflare.deleted == [(old.id, True)] and new.id in cloudflare.deployments
    # Already gone (404) is success.
    again = pages(cloudflare, "delete", "--project", PROJECT, "--deployment", old.id)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["deleted"] is False


def test_delete_never_touches_the_production_deployment(cloudflare, steps_env):
    prod = cloudflare.add_deployment("main")
    result = pages(cloudflare, "delete", "--project", PROJECT, "--deployment", prod.id)
    assert result.returncode == 0
    assert "refusing to delete deployment" in result.stderr
    assert prod.id in cloudflare.deployments
    assert not [r for r in cloudflare.requests if r.method == "DELETE"]


def test_delete_retries_transient_errors_and_fails_fast_on_a_bad_token(cloudflare, steps_env):
    doomed = cloudflare.add_deployment("pr-7")
    cloudflare.fault("DELETE", "/deployments/", Reply(502, body="bad gateway"), error(500, 8000000, "unknown error"))
    result = pages(cloudflare, "delete", "--project", PROJECT, "--deployment", doomed.id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["deleted"] is True
    assert "attempt 2 of 5 failed" in result.stderr
    other = cloudflare.add_deployment("pr-7")
    bad = pages(cloudflare, "delete", "--project", PROJECT, "--deployment", other.id, token="wrong-token-0123")
    assert bad.returncode == 0 and json.loads(bad.stdout)["skipped"] is True
    assert "not retrying (permanent)" in bad.stderr and "API token is not valid" in bad.stderr
    assert other.id in cloudflare.deployments


def test_missing_credentials_are_a_clear_skip(cloudflare):
    result = pages(cloudflare, "delete-branch", "--project", PROJECT, "--branch", "pr-7", token="")
    assert result.returncode == 0
    assert "CLOUDFLARE_API_TOKEN not set" in result.stderr


# --- what a deploy deploys: the build's export, from this runner or the artifacts bucket -------------


def published(site: Path) -> str:
    """Publish `site` as the site build does; its record."""
    data = artifacts.deterministic_tarball(site, files_of(site))
    record = artifacts.publish(data, sha256=output_hash(site), bucket=ARTIFACTS_BUCKET, prefix=PREFIX, kind="site", suffix=".tar.gz")
    return json.dumps(record.line())


@pytest.mark.slow
def test_a_deploy_on_a_runner_without_the_build_fetches_the_published_export(cloudflare, site, artifacts_bucket, tmp_path):
    record = published(site)
    expected = {f"/{p.relative_to(site).as_posix()}": p.read_bytes() for p in files_of(site)}
    gone = tmp_path / "new-runner" / ".build/preview-pr-7/site"  # a fresh checkout: nothing built
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "index.html").write_text("<html>last week's site</html>")
    for directory in (gone, stale):
        result = deploy(cloudflare, directory, record=record)
        assert result.returncode == 0, result.stderr
        deployment = cloudflare.deployments[json.loads(result.stdout)["id"]]
        assert {path: cloudflare.assets[h] for path, h in deployment.manifest.items()} == expected
        assert "fetching the build's export from s3://" in result.stderr


@pytest.mark.slow
def test_a_deploy_never_deploys_a_broken_or_missing_copy(cloudflare, site, artifacts_bucket, steps_env, tmp_path):
    """The broken-copy test: bytes under the record's key that do not hash to it are refused,
    and so is a record whose object is gone; one line each, and nothing reaches Pages."""
    import boto3

    record = json.loads(published(site))
    s3 = boto3.client("s3")
    # The pinned version overwritten in place cannot happen on S3; a wrong version id can point at one.
    broken = s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=record["key"], Body=b"not the site")["VersionId"]
    for wrong, why in (
        ({**record, "version": broken}, "is a broken copy"),
        ({**record, "key": record["key"].replace(record["object_sha256"], "f" * 64)}, "cannot be fetched"),
    ):
        result = deploy(cloudflare, tmp_path / "empty", record=json.dumps(wrong))
        assert result.returncode == 1
        [failed] = [line for line in result.stderr.splitlines() if line.startswith("FAILED pages-deploy")]
        assert why in failed and "is not on this runner" in failed, failed
        assert not cloudflare.deployments


@pytest.mark.slow
def test_an_update_deletes_the_deployment_its_previous_run_recorded(cloudflare, site):
    first = deploy(cloudflare, site)
    assert first.returncode == 0, first.stderr
    old = json.loads(first.stdout)["id"]
    again = deploy(cloudflare, site, flags=("--delete-previous",), PULUMI_COMMAND_STDOUT=first.stdout)
    assert again.returncode == 0, again.stderr
    new = json.loads(again.stdout)["id"]
    assert new != old and list(cloudflare.deployments) == [new] and cloudflare.deleted == [(old, True)]


@pytest.mark.slow
def test_a_replaced_branch_cleanup_deletes_nothing_and_the_last_one_deletes_the_branch(cloudflare, artifacts_bucket):
    """claim-branch is the cleanup's create: a replacement claims the branch before the old
    cleanup's delete runs, which then leaves the live preview alone."""
    live = cloudflare.add_deployment("pr-7")
    other = cloudflare.add_deployment("pr-8")
    first = pages(cloudflare, "claim-branch", "--project", PROJECT, "--branch", "pr-7", *PUBLISH)
    assert first.returncode == 0, first.stderr
    # An update keeps its claim: the Command is the same resource.
    kept = pages(cloudflare, "claim-branch", "--project", PROJECT, "--branch", "pr-7", *PUBLISH, PULUMI_COMMAND_STDOUT=first.stdout)
    assert json.loads(kept.stdout)["claim"] == json.loads(first.stdout)["claim"]
    second = pages(cloudflare, "claim-branch", "--project", PROJECT, "--branch", "pr-7", *PUBLISH)  # the replacement
    assert json.loads(second.stdout)["claim"] != json.loads(first.stdout)["claim"]

    replaced = pages(cloudflare, "delete-branch", "--project", PROJECT, "--branch", "pr-7", "--claimed", *PUBLISH,
                     PULUMI_COMMAND_STDOUT=first.stdout)  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["deleted"] == [] and live.id in cloudflare.deployments
    assert "claimed by a newer cleanup" in replaced.stderr

    destroyed = pages(cloudflare, "delete-branch", "--project", PROJECT, "--branch", "pr-7", "--claimed", *PUBLISH,
                      PULUMI_COMMAND_STDOUT=second.stdout)  # fmt: skip
    assert destroyed.returncode == 0, destroyed.stderr
    assert json.loads(destroyed.stdout)["deleted"] == [live.id] and list(cloudflare.deployments) == [other.id]


def test_claimed_delete_branch_needs_where_the_claim_is(cloudflare):
    result = pages(cloudflare, "delete-branch", "--project", PROJECT, "--branch", "pr-7", "--claimed")
    assert result.returncode == 2 and "--claimed needs --artifacts-bucket" in result.stderr
