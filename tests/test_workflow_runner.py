"""The local workflow runner's own rules (sandbox/workflow_runner.py, sandbox/github_api.py,
sandbox/actions/), each as GitHub applies it, without running act: environments, secrets scoping,
masking, OIDC subjects, the cache's branch isolation, the GitHub stand-in's API answers.
The workflows themselves run in tests/test_workflow_runs.py."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess  # git with list argv  # nosec B404
from pathlib import Path

import pytest
import requests

from sandbox.actions import cache
from sandbox.github_api import BOT, GitHubStub, JobIdentity, RunRegistration, oidc_subject
from sandbox.workflow_runner import (
    SECRET_REFERENCE,
    VARIABLE_REFERENCE,
    RunRecord,
    _Masker,
    _RecordBuilder,
    deployment_ref,
    load_workflow,
    prepare_workflow,
)
from workflow import repository_settings

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
SETTINGS = repository_settings.load()


def test_every_environment_and_secret_the_workflows_use_is_declared_once() -> None:
    """The repository settings are the one place for environments and secret names: a job may use
    only its environment's secrets and the repository's (GitHub gives it nothing else)."""
    for path in sorted(WORKFLOWS.glob("*.yml")):
        document = load_workflow(path)
        for job_id, job in document["jobs"].items():
            environment = job.get("environment")
            if environment is None:
                allowed = set(SETTINGS.secrets)
            else:
                assert environment in SETTINGS.environments, f"{path.name}:{job_id} uses undeclared environment {environment}"
                allowed = set(SETTINGS.secrets) | set(SETTINGS.environments[environment].secrets)
            used = set(SECRET_REFERENCE.findall(json.dumps(job)))
            assert used <= allowed | {"GITHUB_TOKEN"}, f"{path.name}:{job_id} reads {sorted(used - allowed)} it cannot see"
        variables = set(re.findall(r"(?<![\w.])vars\.([A-Za-z_]\w*)", path.read_text()))
        declared = set(SETTINGS.variables) | {v for e in SETTINGS.environments.values() for v in e.variables}
        assert variables <= declared, f"{path.name} reads undeclared variables {sorted(variables - declared)}"


def test_every_deploy_role_has_its_variable() -> None:
    """The operator sets one AWS_<ROLE>_ROLE_ARN per role the program makes (core.names.DEPLOY_ROLES)."""
    from core.names import DEPLOY_ROLES  # noqa: PLC0415

    missing = {f"AWS_{role.upper()}_ROLE_ARN" for role in DEPLOY_ROLES} - set(SETTINGS.variables)
    assert not missing, f"declare {sorted(missing)} in .github/repository-settings.yml"


def test_production_is_refused_to_every_branch_but_main() -> None:
    production = SETTINGS.environments["production"]
    assert production.allows("refs/heads/main")
    for ref in ("refs/heads/feature", "refs/heads/main2", "refs/tags/v1", "refs/pull/12/merge"):
        assert not production.allows(ref), ref
    assert production.refusal("refs/heads/feature") == (
        'Branch "feature" is not allowed to deploy to production due to environment protection rules.')
    release = repository_settings.Environment("staging", ("release/*",), (), ())
    assert release.allows("refs/heads/release/1") and not release.allows("refs/heads/release/1/x")


def test_a_refused_job_fails_before_its_steps_and_secrets_are_scoped() -> None:
    document = load_workflow(WORKFLOWS / "deploy.yml")
    prepared, refused = prepare_workflow(document, SETTINGS, "refs/heads/feature")
    assert refused == ["deploy"]
    job = prepared["jobs"]["deploy"]
    assert job["needs"] == "security" and len(job["steps"]) == 1
    assert "not allowed to deploy to production" in job["steps"][0]["run"]
    assert "secrets." not in json.dumps(job)
    allowed, refused_on_main = prepare_workflow(document, SETTINGS, "refs/heads/main")
    assert refused_on_main == []
    assert "${{ secrets.DATABASE_URL }}" in json.dumps(allowed["jobs"]["deploy"])

    preview = load_workflow(WORKFLOWS / "preview.yml")
    preview["jobs"]["preview"]["steps"].append({"run": "echo ${{ secrets.DATABASE_URL }} ${{ needs.secrets.result }}"})
    scoped, _ = prepare_workflow(preview, SETTINGS, "refs/heads/feature")
    last = scoped["jobs"]["preview"]["steps"][-1]["run"]
    assert last == "echo ${{ '' }} ${{ needs.secrets.result }}"  # prod's secret is empty in a preview job, as on GitHub


def test_each_trust_boundarys_backend_comes_from_its_environment() -> None:
    """The backend URL names a trust boundary's KMS key (docs/security.md): every job that reads it
    runs in an environment that sets it, and the repository holds none a job could fall back to."""
    per_boundary = {"PULUMI_BACKEND_URL", "PULUMI_SECRETS_PROVIDER"}
    assert not per_boundary & set(SETTINGS.variables)
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_id, job in load_workflow(path)["jobs"].items():
            read = set(VARIABLE_REFERENCE.findall(json.dumps(job))) & per_boundary
            declared = set(SETTINGS.environments[job["environment"]].variables) if job.get("environment") else set()
            assert read <= declared, f"{path.name}:{job_id} reads {sorted(read - declared)} outside an environment that sets it"


def test_a_job_reads_its_environments_variables_in_place_of_the_repositorys() -> None:
    values = {"production": {"PULUMI_BACKEND_URL": "s3://b/pulumi?kmskeyid=prod's"},
              "preview": {"PULUMI_BACKEND_URL": "s3://b/pulumi?kmskeyid=previews"}}  # fmt: skip
    deploy, _ = prepare_workflow(load_workflow(WORKFLOWS / "deploy.yml"), SETTINGS, "refs/heads/main", values)
    assert deploy["jobs"]["deploy"]["env"]["PULUMI_BACKEND_URL"] == "${{ 's3://b/pulumi?kmskeyid=prod''s' }}"
    assert deploy["jobs"]["deploy"]["env"]["PULUMI_SECRETS_PROVIDER"] == "${{ vars.PULUMI_SECRETS_PROVIDER }}"  # not set
    assert "vars.AWS_PROD_ROLE_ARN" in json.dumps(deploy["jobs"]["deploy"])  # the repository's
    preview, _ = prepare_workflow(load_workflow(WORKFLOWS / "preview.yml"), SETTINGS, "refs/heads/feature", values)
    assert preview["jobs"]["preview"]["env"]["PULUMI_BACKEND_URL"] == "${{ 's3://b/pulumi?kmskeyid=previews' }}"
    # A job outside the environment gets none of its variables.
    security, _ = prepare_workflow(load_workflow(WORKFLOWS / "security.yml"), SETTINGS, "refs/heads/main", values)
    assert "kmskeyid" not in json.dumps(security)


def test_a_pull_request_is_checked_against_its_head_branch() -> None:
    event = {"pull_request": {"head": {"ref": "main"}, "number": 3}}
    assert deployment_ref("pull_request", event, "refs/pull/3/merge") == "refs/heads/main"
    assert deployment_ref("push", {}, "refs/heads/x") == "refs/heads/x"


def test_the_oidc_subject_follows_github() -> None:
    assert oidc_subject("o/r", "push", "refs/heads/main", "production") == "repo:o/r:environment:production"
    assert oidc_subject("o/r", "pull_request", "refs/pull/1/merge", None) == "repo:o/r:pull_request"
    assert oidc_subject("o/r", "schedule", "refs/heads/main", None) == "repo:o/r:ref:refs/heads/main"


def test_secrets_and_masked_values_never_reach_the_record(tmp_path: Path) -> None:
    record = RunRecord(run_id=1, workflow="w.yml", event_name="push", ref="refs/heads/main", sha="0" * 40, started=0)
    builder = _RecordBuilder(record, _Masker(["s3cr3t-value"]), tmp_path / "log.jsonl")
    lines = [
        {"jobID": "j", "job": "w/j", "step": 'echo "s3cr3t-value"', "msg": "⭐ Run Main echo ***"},
        {"jobID": "j", "job": "w/j", "command": "add-mask", "arg": "added-later", "raw": "::add-mask::added-later", "msg": "***"},
        {"jobID": "j", "job": "w/j", "raw_output": True, "msg": "token added-later and s3cr3t-value\n"},
        {"jobID": "j", "job": "w/j", "command": "summary", "content": "summary added-later"},
        {"jobID": "j", "job": "w/j", "command": "set-output", "name": "o", "arg": "s3cr3t-value", "stepID": ["x"]},
        {"jobID": "j", "job": "w/j", "jobResult": "success", "msg": "done"},
    ]
    for line in lines:
        builder.feed(json.dumps(line))
    builder.close()
    kept = record.text() + (tmp_path / "log.jsonl").read_text()
    assert "s3cr3t-value" not in kept and "added-later" not in kept
    assert record.job("j").outputs == {"x": {"o": "***"}} and record.job("j").result == "success"


def test_the_cache_of_a_pull_request_is_not_seen_by_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "built.txt").write_text("from the PR")
    monkeypatch.setenv("WEBSTACK_RUNNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(workspace))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "none.json"))
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    assert cache.save("builds-abc", ["built.txt"])
    assert cache.restore("builds-abc", [], ["built.txt"]) == "builds-abc"  # the PR's own later runs
    assert cache.restore("builds-ABC", [], ["built.txt"]) is None  # keys are exact, prefixes only by restore-keys
    assert cache.exact_match("builds-abc", "BUILDS-ABC")  # but cache-hit compares without case (upstream)
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.delenv("GITHUB_BASE_REF")
    assert cache.restore("builds-abc", ["builds-"], ["built.txt"]) is None
    (workspace / "built.txt").write_text("from main")
    assert cache.save("builds-abc", ["built.txt"])
    assert not cache.save("builds-abc", ["built.txt"])  # an existing key is never overwritten
    monkeypatch.setenv("GITHUB_REF", "refs/pull/8/merge")
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    (workspace / "built.txt").unlink()
    assert cache.restore("builds-", ["builds-"], ["built.txt"]) == "builds-abc"  # a PR may read main's
    assert (workspace / "built.txt").read_text() == "from main"
    assert cache.restore("builds-abc", [], ["other-path"]) is None  # another path list, another version


def _registration(run_id: int, **jobs: JobIdentity) -> RunRegistration:
    registration = RunRegistration(run_id=run_id, request_token="request-token", event_name="pull_request",
                                   event={"pull_request": {"head": {"ref": "f"}, "base": {"ref": "main"}}},
                                   ref="refs/pull/3/merge", sha="a" * 40, workflow="preview",
                                   workflow_ref="org/repo/.github/workflows/preview.yml@refs/pull/3/merge", actor="octocat")  # fmt: skip
    registration.jobs.update({("preview", k): v for k, v in jobs.items()})
    return registration


def test_the_token_service_answers_only_a_running_job_with_id_token_write() -> None:
    with GitHubStub() as github:
        github.register_run(_registration(
            5, preview=JobIdentity("preview", True, "org/repo/.github/workflows/preview.yml@refs/pull/3/merge"),
            comment=JobIdentity(None, False, "org/repo/.github/workflows/preview.yml@refs/pull/3/merge")))  # fmt: skip

        def ask(job: str, token: str = "request-token") -> requests.Response:
            return requests.get(github.oidc_token_url, headers={"Authorization": f"Bearer {token}"}, timeout=10,
                                params={"run_id": 5, "workflow": "preview", "job": job, "audience": "sts.amazonaws.com"})  # fmt: skip

        answer = ask("preview")
        assert answer.status_code == 200
        claims = json.loads(base64.urlsafe_b64decode(answer.json()["value"].split(".")[1] + "=="))
        assert claims["sub"] == "repo:org/repo:environment:preview" and claims["aud"] == "sts.amazonaws.com"
        assert claims["job_workflow_ref"].endswith("preview.yml@refs/pull/3/merge") and claims["environment"] == "preview"
        assert ask("comment").status_code == 403
        assert ask("preview", token="guessed").status_code == 401
        github.finish_run(5)
        assert ask("preview").status_code == 401


def test_the_api_stand_in_answers_as_github() -> None:
    with GitHubStub() as github:
        auth = {"Authorization": f"Bearer {github.token}"}
        api = f"{github.url}/repos/{github.repo}"
        github.add_pr(12, head_ref="f", head_sha="b" * 40)
        assert requests.post(f"{api}/labels", json={"name": "x"}, headers=auth, timeout=10).status_code == 201
        duplicate = requests.post(f"{api}/labels", json={"name": "x"}, headers=auth, timeout=10)
        assert duplicate.status_code == 422 and duplicate.json()["errors"][0]["code"] == "already_exists"
        for n in range(3):
            assert requests.post(f"{api}/issues/12/comments", json={"body": f"c{n}"}, headers=auth, timeout=10).status_code == 201
        page = requests.get(f"{api}/issues/12/comments", params={"per_page": 2}, headers=auth, timeout=10)
        assert [c["body"] for c in page.json()] == ["c0", "c1"] and 'rel="next"' in page.headers["Link"]
        assert page.json()[0]["user"] == BOT
        issue = requests.post(f"{api}/issues", json={"title": "t", "labels": ["x"]}, headers=auth, timeout=10).json()
        assert issue["number"] == 13  # one counter for issues and pull requests
        listed = requests.get(f"{api}/issues", params={"labels": "x"}, headers=auth, timeout=10).json()
        assert [i["number"] for i in listed] == [13]
        assert requests.get(f"{api}/issues", timeout=10).status_code == 401
        assert requests.get(f"{github.url}/repos/other/repo/issues", headers=auth, timeout=10).status_code == 404


def test_the_api_stand_in_holds_each_environments_variables() -> None:
    with GitHubStub(environments={"production": ["main"]}) as github:
        auth = {"Authorization": f"Bearer {github.token}"}
        variables = f"{github.url}/repos/{github.repo}/environments/production/variables"
        assert requests.post(variables, json={"name": "pulumi_backend_url", "value": "s3://a"}, headers=auth, timeout=10).status_code == 201
        assert requests.post(variables, json={"name": "PULUMI_BACKEND_URL", "value": "s3://b"}, headers=auth, timeout=10).status_code == 409
        assert requests.post(variables, json={"name": "GITHUB_X", "value": "v"}, headers=auth, timeout=10).status_code == 422
        assert requests.patch(f"{variables}/PULUMI_BACKEND_URL", json={"value": "s3://c"}, headers=auth, timeout=10).status_code == 204
        listed = requests.get(variables, headers=auth, timeout=10).json()
        assert listed["total_count"] == 1 and listed["variables"][0]["name"] == "PULUMI_BACKEND_URL"
        assert github.variables_by_environment() == {"production": {"PULUMI_BACKEND_URL": "s3://c"}}
        other = f"{github.url}/repos/{github.repo}/environments/staging/variables"
        assert requests.post(other, json={"name": "X", "value": "v"}, headers=auth, timeout=10).status_code == 404


def test_the_trufflehog_stand_in_scans_the_commit_range_in_trufflehogs_shapes(tmp_path: Path, monkeypatch, capsys) -> None:
    """gitleaks over `--since-commit BASE --branch HEAD`, printed as trufflehog prints: JSON the
    quarantine reads, annotations without the secret, exit 183 with --fail. Verified means live in
    the local cloud: its Cloudflare token is; a GitHub-shaped token cannot be checked (unknown); a
    generic-looking key has no trufflehog detector and is not reported."""
    from sandbox.actions import trufflehog
    from sandbox.cloudflare_api import CloudflareStub
    from sandbox.engine import BIN_DIR
    from workflow.quarantine import parse_findings

    if not (BIN_DIR / "gitleaks").exists():
        pytest.fail("bin/gitleaks is missing: python -m sandbox.engine build --only runner")
    live = "Tq8_" + "x" * 10 + "Zk3-" + "y" * 22  # 40 characters, as Cloudflare's tokens are
    monkeypatch.setenv("WEBSTACK_ENGINE_BIN", str(BIN_DIR))
    repo = tmp_path / "repo"
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **env}, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    repo.mkdir()
    git("init", "-q", "-b", "main")
    (repo / "README").write_text('api_key = "fixture-signing-key-9c1e7d"\n')
    git("add", "-A")
    git("commit", "-qm", "clean")
    base = git("rev-parse", "HEAD")
    github_token = "ghp_" + "Z3ZJ7qk2LwX9cVb8NmA1sD4fG6hJ0kLpQr5T"
    (repo / "creds.env").write_text(f"\nGITHUB_TOKEN={github_token}\nCLOUDFLARE_API_TOKEN={live}\n")
    git("add", "-A")
    git("commit", "-qm", "leak")
    head = git("rev-parse", "HEAD")

    with CloudflareStub(project=None, token=live) as cloudflare:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", cloudflare.api_base)
        assert trufflehog.cli(["git", f"file://{repo}", "--since-commit", head, "--branch", head, "--fail"]) == 0
        capsys.readouterr()
        assert trufflehog.cli(["git", f"file://{repo}", "--since-commit", base, "--branch", head, "--fail", "--github-actions"]) == 183
        annotations = capsys.readouterr().out.splitlines()
        assert sorted(annotations) == [
            "::warning file=creds.env,line=2,endLine=2::Found unverified Github result 🐷🔑",
            "::warning file=creds.env,line=3,endLine=3::Found verified CloudflareApiToken result 🐷🔑",
        ]
        assert trufflehog.cli(["git", f"file://{repo}", "--results=verified", "--json"]) == 0
        findings = parse_findings(capsys.readouterr().out)
        assert [(f.detector, f.file, f.line, f.commit, f.verified) for f in findings] == [
            ("CloudflareApiToken", "creds.env", 3, head, True)]
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", "http://127.0.0.1:9/client/v4")
        assert trufflehog.cli(["git", f"file://{repo}", "--results=verified", "--json"]) == 0
        assert capsys.readouterr().out == ""  # a service that cannot be asked verifies nothing


def test_the_runners_docker_runs_only_the_trufflehog_image(capsys) -> None:
    from sandbox.actions import trufflehog

    assert trufflehog.docker(["run", "--rm", "ubuntu:24.04", "true"]) == 125
    assert "only ghcr.io/trufflesecurity/trufflehog is stood in" in capsys.readouterr().err
    assert trufflehog.docker(["build", "."]) == 125


def test_the_local_cloudflare_edge_serves_the_zones_hosts_and_refuses_the_rest(tmp_path: Path) -> None:
    """A runner reaches https://pr-12.app.<zone>/ through the edge: TLS with the edge's CA, the
    request answered by the branch's site; an unresolved zone host fails the CONNECT; any other
    host is refused (no open proxy: the jobs install offline), even one that answers."""
    from sandbox.http_server import Reply, StubServer
    from sandbox.pages_edge import PagesEdge

    with StubServer() as pr_site, StubServer() as elsewhere:
        pr_site.script(lambda request: Reply(200, body=f"pr-12 site {request.path}"))
        elsewhere.script(Reply(200, body="the internet"))
        routes = {"pr-12.app.sandbox.test": ("webstack-site", "pr-12")}
        sites = {("webstack-site", "pr-12"): pr_site.url}
        with PagesEdge(routes.get, lambda project, branch: sites[(project, branch)], zone="sandbox.test",
                       directory=tmp_path) as edge:  # fmt: skip
            proxies = {"https": edge.url, "http": edge.url}
            answer = requests.get("https://pr-12.app.sandbox.test/about", proxies=proxies, verify=str(edge.bundle_file), timeout=10)
            assert (answer.status_code, answer.text) == (200, "pr-12 site /about")
            assert requests.get("https://pr-12.webstack-site.pages.dev/", proxies=proxies, verify=str(edge.bundle_file),
                                timeout=10).text == "pr-12 site /"  # fmt: skip
            with pytest.raises(requests.exceptions.ProxyError):
                requests.get("https://pr-13.app.sandbox.test/", proxies=proxies, verify=str(edge.bundle_file), timeout=10)
            with pytest.raises(requests.exceptions.SSLError):  # only the edge's CA vouches for the zone
                requests.get("https://pr-12.app.sandbox.test/", proxies=proxies, timeout=10)
            plain = requests.get("http://pr-12.app.sandbox.test/about?x=1", proxies=proxies, timeout=10, allow_redirects=False)
            assert (plain.status_code, plain.headers["Location"]) == (301, "https://pr-12.app.sandbox.test/about?x=1")
            assert edge.refused == []
            port = elsewhere.url.rsplit(":", 1)[1]
            refused = requests.get(f"http://localhost:{port}/x", proxies=proxies, timeout=10)
            assert refused.status_code == 403 and "the internet" not in refused.text
            for registry in ("https://pypi.org/simple/pip/", f"https://localhost:{port}/", "https://sandbox.test.evil.example/"):
                with pytest.raises(requests.exceptions.ProxyError, match="403"):
                    requests.get(registry, proxies=proxies, verify=str(edge.bundle_file), timeout=10)
            assert edge.refused == [f"http://localhost:{port}", "pypi.org:443", f"localhost:{port}", "sandbox.test.evil.example:443"]
            assert elsewhere.requests == [], "a refused request reached its host"
