"""The world the workflow scenarios run in: a local cloud, GitHub, the repository, its runner, and
what an operator sets up once. tests/test_workflow_runs.py and bench/workflow_runs.py share it.

    with World.create(tmp_dir) as world:           # cloud, GitHub stand-in, repository, runner
        world.bootstrap_prod()                     # the README's one-time bootstrap of prod
        record = world.push_main("message", {"path": "content"})

- The **repository** is this working tree as it is (tracked and untracked files, ignored ones
  left out; uncommitted changes included), committed to a local stand-in for github.com, plus one
  commit that does what every user does first: the stack files hold the values of their account,
  here the local cloud's (its zone, Cloudflare account, DNS resolver, the API's token issuer, the
  prod site's URL) and `githubRepository: org/repo`.
- **GitHub** (sandbox/github_api.py) holds the environments of .github/repository-settings.yml;
  its OIDC issuer's keys are registered with the local cloud's STS.
- The **repository settings' values** are what an operator would set after the bootstrap: the
  repository's variables (the deploy roles' ARNs, region, Cloudflare account), each environment's
  backend URL and secrets provider from prod's outputs (`production`: prod's key; `preview`,
  `preview-sweeper`: the previews'), the environment secrets (prod's and the previews' database
  URLs, the Cloudflare token, the alert webhooks, one path per environment so an alert says whose
  it is).
- **bootstrap_prod** is docs/operations.md's "Bootstrapping prod", narrowed to what must exist
  before the deploy workflow can run at all: the state backend (bucket, keys, lock table) and the
  GitHub OIDC provider and deploy roles, created by `pulumi up --target` on a local backend; then
  `meta.yaml` under SSE-S3 and prod moved into the S3 backend under its own key (`stack export`,
  login with prod's `backendUrl`, `stack init`, `stack import`). Everything else of prod, the
  deploy workflow makes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess  # pulumi with list argv  # nosec B404
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
import yaml
from psycopg import sql

from components.aws_policies import META_OBJECT
from core.names import DEPLOY_ROLES, LEASE_KEY_ATTRIBUTE, PAGES_PRODUCTION_BRANCH, STATE_PREFIX, deploy_role_name, foundation_names, lease_key
from sandbox import cloud
from sandbox.engine import BIN_DIR, engine_env
from sandbox.github_api import GitHubStub
from sandbox.pages_edge import PAGES_SUFFIX, PagesEdge
from sandbox.workflow_runner import (
    LocalRepository,
    RunRecord,
    WorkflowRunner,
    dispatch_event,
    load_workflow,
    pull_request_event,
    push_event,
    schedule_event,
)
from workflow import repository_settings

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
STANDIN_PLUGINS = REPO / "sandbox" / "bin"
PROJECT = "webstack"
ACCOUNT_ID = cloud.ACCOUNT_ID
REGION = cloud.REGION
DATABASE = "app"
PREVIEW_LOGIN = "webstack_preview_ci"
PREVIEW_PASSWORD = "preview-ci-password"  # nosec B105 - a throwaway role of the local cloud's database
# What the bootstrap creates: these components and everything below them.
BOOTSTRAP_COMPONENTS = ("webstack:index:StateBackend", "webstack:index:GithubOidc")


# prod's outputs the bootstrap needs (__main__.py exports them with the foundation).
BOOTSTRAP_OUTPUTS = ("stateBucket", "backendUrl", "secretsProvider", "previewBackendUrl", "previewSecretsProvider")


class WorldError(RuntimeError):
    pass


def environment_variables(outputs: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Each environment's backend URL and secrets provider, from prod's outputs (docs/workflows.md):
    each trust boundary's jobs log in with the URL that names its own key."""
    return {
        "production": {"PULUMI_BACKEND_URL": outputs["backendUrl"], "PULUMI_SECRETS_PROVIDER": outputs["secretsProvider"]},
        "preview": {"PULUMI_BACKEND_URL": outputs["previewBackendUrl"], "PULUMI_SECRETS_PROVIDER": outputs["previewSecretsProvider"]},
        "preview-sweeper": {"PULUMI_BACKEND_URL": outputs["previewBackendUrl"]},
    }


def _replace_config(path: Path, values: Mapping[str, Any]) -> str:
    document = yaml.safe_load(path.read_text()) or {}
    config = document.setdefault("config", {})
    for key, value in values.items():
        config[f"{PROJECT}:{key}"] = value
    return yaml.safe_dump(document, sort_keys=False)


def _pages_route(endpoints: cloud.Endpoints, host: str) -> tuple[str, str] | None:
    """(project, branch) a zone host is served from: its CNAME to a Pages alias, in the Cloudflare stand-in."""
    answer = requests.get(f"{endpoints.cloudflare_api}/zones/{endpoints.zone_id}/dns_records", params={"name": host},
                          headers={"Authorization": f"Bearer {endpoints.cloudflare_token}"}, timeout=10)  # fmt: skip
    if answer.status_code != 200:
        return None
    for record in answer.json().get("result") or []:
        target = str(record.get("content") or "").rstrip(".")
        if record.get("type") == "CNAME" and target.endswith(PAGES_SUFFIX):
            labels = target.removesuffix(PAGES_SUFFIX).split(".")
            return (labels[0], PAGES_PRODUCTION_BRANCH) if len(labels) == 1 else (labels[1], labels[0])
    return None


def _with_secrets_provider(path: Path, initialized: Mapping[str, Any]) -> str:
    document = yaml.safe_load(path.read_text()) or {}
    keys = {k: initialized[k] for k in ("secretsprovider", "encryptedkey") if k in initialized}
    if len(keys) != 2:
        raise WorldError("pulumi stack init wrote no secretsprovider/encryptedkey into Pulumi.prod.yaml")
    return yaml.safe_dump({**keys, **document}, sort_keys=False)


def _types(urn: str) -> list[str]:
    return urn.split("::")[2].split("$") if urn.count("::") >= 3 else []


def bootstrap_targets(steps: list[dict[str, Any]]) -> list[str]:
    """The URNs the bootstrap creates: BOOTSTRAP_COMPONENTS' subtrees, their parents, providers and
    dependencies (a deploy role's policy names the artifacts bucket's key, for one), transitively:
    `pulumi up --target` refuses a resource whose dependency it would not create."""
    states = {s["urn"]: s.get("newState") or {} for s in steps if s.get("urn")}
    chosen = {urn for urn in states if any(c in _types(urn) for c in BOOTSTRAP_COMPONENTS)}
    pending = list(chosen)
    while pending:
        state = states.get(pending.pop(), {})
        dependencies = [*(state.get("dependencies") or []), *(u for us in (state.get("propertyDependencies") or {}).values() for u in us)]
        for ref in (state.get("parent"), str(state.get("provider") or "").rsplit("::", 1)[0] or None, *dependencies):
            if ref and ref in states and ref not in chosen and not ref.endswith("pulumi:pulumi:Stack::webstack-prod"):
                chosen.add(ref)
                pending.append(ref)
    return sorted(chosen)


@dataclass
class World:
    root: Path
    endpoints: cloud.Endpoints
    github: GitHubStub
    edge: PagesEdge
    repository: LocalRepository
    runner: WorkflowRunner
    prod_outputs: dict[str, Any] = field(default_factory=dict)

    # --- making it ------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, *, source: Path = REPO) -> World:
        root.mkdir(parents=True, exist_ok=True)
        endpoints = cloud.ensure_running(root / "cloud")
        settings = repository_settings.load(source / ".github" / "repository-settings.yml")
        github = GitHubStub(repo="org/repo", environments={n: e.branches for n, e in settings.environments.items()})
        github.__enter__()
        edge = PagesEdge(route=lambda host: _pages_route(endpoints, host), site=endpoints.site, zone=endpoints.zone_name,
                         directory=root / "edge")  # fmt: skip
        edge.__enter__()
        try:
            requests.put(f"{endpoints.aws}/_sandbox/oidc-issuer", timeout=10,
                         json={"issuer": github.issuer.issuer, "jwks_uri": github.oidc_jwks_url}).raise_for_status()  # fmt: skip
            repository = LocalRepository.from_tree(root / "repository", source, name=github.repo)
            world = cls(root=root, endpoints=endpoints, github=github, edge=edge, repository=repository,
                        runner=WorkflowRunner(root=root / "runner", repository=repository, github=github, secrets={},
                                              variables={}, settings=settings))  # fmt: skip
            world._configure_repository()
        except BaseException:
            edge.__exit__(None, None, None)
            github.__exit__(None, None, None)
            cloud.stop(root / "cloud")
            raise
        return world

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.edge.__exit__(None, None, None)
        self.github.__exit__(None, None, None)
        cloud.stop(self.root / "cloud")

    @property
    def database_url(self) -> str:
        return re.sub(r"/[^/]*$", f"/{DATABASE}", self.endpoints.database_url)

    @property
    def preview_database_url(self) -> str:
        return re.sub(r"//[^@]*@", f"//{PREVIEW_LOGIN}:{PREVIEW_PASSWORD}@", self.database_url)

    def alerts(self) -> list[dict[str, Any]]:
        path = Path(self.endpoints.alerts)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def _configure_repository(self) -> None:
        e = self.endpoints
        with psycopg.connect(e.database_url, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        common = {
            "awsRegion": REGION,
            "awsAccountId": ACCOUNT_ID,
            "githubRepository": self.github.repo,
            "domain": e.zone_name,
            "cloudflareAccountId": e.cloudflare_account,
            "cloudflareZoneId": e.zone_id,
            "jwksUrl": e.jwks_url,
            "jwtIssuer": e.jwt_issuer,
            "jwtAudience": e.jwt_audience,
            "dnsResolvers": [e.dns],
            "migrationTimeoutSeconds": 120,
        }
        work = self.repository.work
        files = {
            "Pulumi.prod.yaml": _replace_config(work / "Pulumi.prod.yaml", common),
            "Pulumi.preview.yaml": _replace_config(work / "Pulumi.preview.yaml", common),
        }
        self.repository.commit("Configure the stacks for our account (the local cloud)", files)
        self.repository.push("main")
        webhook = e.webhook
        # The environments' PULUMI_BACKEND_URL and PULUMI_SECRETS_PROVIDER name the trust
        # boundaries' keys: prod's outputs, which bootstrap_prod sets on the GitHub stand-in.
        self.runner.variables = {
            # One variable per deploy role the program makes (AWS_PROD_ROLE_ARN, AWS_PREVIEW_ROLE_ARN, ...).
            **{f"AWS_{role.upper()}_ROLE_ARN": f"arn:aws:iam::{ACCOUNT_ID}:role/{deploy_role_name(PROJECT, role)}"
               for role in DEPLOY_ROLES},  # fmt: skip
            "AWS_REGION": REGION,
            "CLOUDFLARE_ACCOUNT_ID": e.cloudflare_account,
            "AUDIT_PIPELINE_TOKEN_IDS": "",
        }
        self.runner.secrets = {
            "DATABASE_URL": self.database_url,
            "CLOUDFLARE_API_TOKEN": e.cloudflare_token,
            "ALERT_WEBHOOK_URL": f"{webhook}/production",
            "PREVIEW_DATABASE_URL": self.preview_database_url,
            "PREVIEW_CLOUDFLARE_API_TOKEN": e.cloudflare_token,
            "PREVIEW_ALERT_WEBHOOK_URL": f"{webhook}/preview",
            "SECURITY_ALERT_WEBHOOK_URL": f"{webhook}/security",
        }
        self.runner.machine_env = {
            "AWS_ENDPOINT_URL": e.aws,
            "CLOUDFLARE_API_BASE_URL": e.cloudflare_api,
            "WEBSTACK_LAMBDA_URL_BASE": e.lambda_base,
            # The zone's sites, https://<host>/, through the local Cloudflare edge (sandbox/pages_edge.py).
            **self.edge.environment(),
            # TEMPORARY: the language host stand-in runs a policy pack as `python <dir>` without -u,
            # so the pack's port never leaves its pipe and `pulumi preview` hangs; upstream's host
            # runs `python -u -m pulumi.policy` (wt-fidelity's fix). Remove once that lands.
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def pages_project(self) -> str:
        config = yaml.safe_load((self.repository.work / "Pulumi.prod.yaml").read_text())["config"]
        return str(config[f"{PROJECT}:pagesProject"])

    # --- the operator's one-time setup ------------------------------------------------------------
    def operator_env(self, backend: str) -> dict[str, str]:
        env = engine_env(self.root / "operator", "bootstrap-passphrase", venv=VENV)
        env["PATH"] = f"{BIN_DIR}:{STANDIN_PLUGINS}:{VENV / 'bin'}:{env['PATH']}"
        env.update(
            PULUMI_BACKEND_URL=backend,
            AWS_ENDPOINT_URL=self.endpoints.aws,
            AWS_ACCESS_KEY_ID="operator",
            AWS_SECRET_ACCESS_KEY="operator-secret",  # nosec B106 - moto accepts any key
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            CLOUDFLARE_API_BASE_URL=self.endpoints.cloudflare_api,
            CLOUDFLARE_API_TOKEN=self.endpoints.cloudflare_token,
            CLOUDFLARE_ACCOUNT_ID=self.endpoints.cloudflare_account,
            WEBSTACK_LAMBDA_URL_BASE=self.endpoints.lambda_base,
            DATABASE_URL=self.database_url,
            ALERT_WEBHOOK_URL=f"{self.endpoints.webhook}/operator",
        )
        return env

    def _pulumi(self, *args: str, cwd: Path, env: Mapping[str, str], timeout: float = 900) -> str:
        done = subprocess.run([str(BIN_DIR / "pulumi"), *args, "--non-interactive"], cwd=cwd, env=dict(env),  # noqa: S603  # nosec
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
            raise WorldError(f"pulumi {' '.join(args)} exited {done.returncode}:\n{tail}")
        return done.stdout

    def bootstrap_prod(self) -> None:
        """docs/operations.md "Bootstrapping prod", step by step: prod's state backend and deploy
        roles on a local backend, prod moved into S3 under its own key, the environments' backend
        URLs and secrets providers set from prod's outputs."""
        checkout = self.root / "operator" / "checkout"
        shutil.rmtree(checkout, ignore_errors=True)
        subprocess.run(["git", "clone", "--quiet", str(self.repository.git_dir), str(checkout)], check=True)  # noqa: S603,S607  # nosec
        (checkout / ".venv").symlink_to(VENV)  # the operator's virtualenv (Pulumi.yaml names .venv)
        local = (self.root / "operator" / "bootstrap-state").resolve()
        local.mkdir(parents=True, exist_ok=True)
        env = self.operator_env(local.as_uri())
        self._pulumi("stack", "init", "prod", "--secrets-provider", "passphrase", cwd=checkout, env=env)
        preview = self._pulumi("preview", "--json", "--stack", "prod", cwd=checkout, env=env)
        steps = json.loads(preview[preview.index("{"):]).get("steps") or []
        targets = bootstrap_targets(steps)
        if not targets:
            raise WorldError("the preview of prod names no state backend or OIDC resources: nothing to bootstrap")
        self._pulumi("up", "--yes", "--stack", "prod", *[a for urn in targets for a in ("--target", urn)], cwd=checkout, env=env)
        outputs = json.loads(self._pulumi("stack", "output", "--json", "--stack", "prod", cwd=checkout, env=env))
        missing = [k for k in BOOTSTRAP_OUTPUTS if not outputs.get(k)]
        if missing:
            raise WorldError(f"prod's bootstrap up left the outputs {missing} unset")
        # The state's secrets are the passphrase's: re-encrypt them with prod's key first, or the
        # imported stack would ask for that passphrase forever after (its snapshot keeps its provider).
        # `secretsProvider` is the doc's awskms://alias/webstack-pulumi-state?region=….
        self._pulumi("stack", "change-secrets-provider", "--stack", "prod", outputs["secretsProvider"], cwd=checkout, env=env)
        exported = self.root / "operator" / "prod.json"
        self._pulumi("stack", "export", "--stack", "prod", "--file", str(exported), cwd=checkout, env=env)
        # meta.yaml under SSE-S3 before any login writes it under the URL's key (the bucket refuses that).
        self.aws("s3").put_object(Bucket=outputs["stateBucket"], Key=META_OBJECT, Body=b"version: 1\n", ServerSideEncryption="AES256")
        s3 = self.operator_env(outputs["backendUrl"])  # `pulumi login "$(pulumi stack output backendUrl)"`
        # `stack init` writes the stack file's salt and secrets provider: a scratch copy of the checkout.
        subprocess.run(["git", "checkout", "--quiet", "--", "Pulumi.prod.yaml"], cwd=checkout, check=True)  # noqa: S603,S607  # nosec
        self._pulumi("stack", "init", "prod", "--secrets-provider", outputs["secretsProvider"], cwd=checkout, env=s3)
        self._pulumi("stack", "import", "--stack", "prod", "--file", str(exported), cwd=checkout, env=s3)
        # `stack init` wrote the stack's secrets provider and its encrypted data key into
        # Pulumi.prod.yaml; without them every later command reads the stack as a passphrase one.
        # The operator commits the file (docs/operations.md "Bootstrapping prod").
        settings = yaml.safe_load((checkout / "Pulumi.prod.yaml").read_text())
        self.repository.commit("prod's secrets provider (pulumi stack init in the S3 backend)", {
            "Pulumi.prod.yaml": _with_secrets_provider(self.repository.work / "Pulumi.prod.yaml", settings),
        }, branch="main")  # fmt: skip
        self.repository.push("main")
        self.prod_outputs = outputs
        # As the operator sets them (`gh variable set NAME --env ENV`): through GitHub's API.
        for environment, variables in environment_variables(outputs).items():
            for name, value in variables.items():
                requests.post(f"{self.github.url}/repos/{self.github.repo}/environments/{environment}/variables", timeout=10,
                              headers={"Authorization": f"Bearer {self.github.token}"}, json={"name": name, "value": value},
                              ).raise_for_status()  # fmt: skip

    def create_preview_login(self) -> None:
        """The operator's one step after the first deploy made the preview group role (README):
        the login role pull requests use, a member of it."""
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PREVIEW_LOGIN,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE webstack_preview").format(
                    sql.Identifier(PREVIEW_LOGIN), sql.Literal(PREVIEW_PASSWORD)))  # fmt: skip

    # --- reading the services (what the scenarios assert on) -----------------------------------
    def aws(self, service: str) -> Any:
        """A boto3 client of the local cloud's AWS, as the account's administrator."""
        import boto3  # noqa: PLC0415

        return boto3.client(service, endpoint_url=self.endpoints.aws, region_name=REGION,
                            aws_access_key_id="operator", aws_secret_access_key="operator-secret")  # nosec B106 # fmt: skip

    def cloudflare(self, path: str, **params: Any) -> Any:
        """GET on the Cloudflare API stand-in; the envelope's `result`."""
        answer = requests.get(f"{self.endpoints.cloudflare_api}{path}", params=params, timeout=10,
                              headers={"Authorization": f"Bearer {self.endpoints.cloudflare_token}"})  # fmt: skip
        answer.raise_for_status()
        return answer.json()["result"]

    def site(self, host: str) -> requests.Response:
        """GET https://<host>/ as a runner reaches it: through the local Cloudflare edge."""
        return requests.get(f"https://{host}/", proxies={"https": self.edge.url}, verify=str(self.edge.bundle_file), timeout=30)

    def pages_deployments(self, branch: str) -> list[dict[str, Any]]:
        e = self.endpoints
        found = self.cloudflare(f"/accounts/{e.cloudflare_account}/pages/projects/{self.pages_project}/deployments")
        return [d for d in found if (d.get("deployment_trigger") or {}).get("metadata", {}).get("branch") == branch]

    def dns_records(self, name: str) -> list[dict[str, Any]]:
        return list(self.cloudflare(f"/zones/{self.endpoints.zone_id}/dns_records", name=name))

    def query(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(statement, args).fetchall()  # type: ignore[arg-type]

    def backend_encryption(self) -> dict[str, tuple[str | None, str | None]]:
        """Every state object's server-side encryption as S3 holds it: key -> (SSE type, KMS key)."""
        bucket = foundation_names(PROJECT, ACCOUNT_ID)["state_bucket"]
        heads = {key: self.aws("s3").head_object(Bucket=bucket, Key=key) for key in self.backend_objects()}
        return {key: (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) for key, head in heads.items()}

    def backend_objects(self) -> list[str]:
        """Every object of the S3 state backend (the stacks, their history and backups, locks)."""
        bucket = foundation_names(PROJECT, ACCOUNT_ID)["state_bucket"]
        pages = self.aws("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{STATE_PREFIX}/")
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    # --- events -----------------------------------------------------------------------------------
    def push_main(self, message: str, files: Mapping[str, str | None] | None = None, **run: Any) -> RunRecord:
        """A commit pushed to main, and the deploy workflow it triggers."""
        self.repository.commit(message, files, branch="main")
        before, after = self.repository.push("main")
        event_name, event = push_event(self.repository, "main", before, after)
        return self.runner.run("deploy.yml", event_name, event, **run)

    def push_branch(self, branch: str, message: str, files: Mapping[str, str | None], **run: Any) -> RunRecord:
        """A commit pushed to another branch than main: security.yml is what runs for it."""
        self.repository.checkout(branch, start="main")
        self.repository.commit(message, files)
        before, after = self.repository.push(branch)
        self.repository.checkout("main")
        event_name, event = push_event(self.repository, branch, before, after)
        return self.runner.run("security.yml", event_name, event, **run)

    def open_pr_refs(self, number: int, branch: str, message: str, files: Mapping[str, str | None]) -> None:
        """A branch with one commit and its pull request on GitHub (no workflow run yet)."""
        self.repository.checkout(branch, start="main")
        self.repository.commit(message, files)
        self.repository.push(branch)
        self.repository.checkout("main")
        head = self.repository.head(f"refs/heads/{branch}")
        self.repository.update_pull_refs(number, head, "main")
        self.github.add_pr(number, head_ref=branch, head_sha=head, base_sha=self.repository.head("refs/heads/main"))

    def run_pr(self, number: int, action: str, workflow: str = "preview.yml", **run: Any) -> RunRecord:
        event_name, event = pull_request_event(self.repository, action, self.github.pulls[number])
        return self.runner.run(workflow, event_name, event, **run)

    def open_pr(self, number: int, branch: str, message: str, files: Mapping[str, str | None], **run: Any) -> RunRecord:
        self.open_pr_refs(number, branch, message, files)
        return self.run_pr(number, "opened", **run)

    def push_pr(self, number: int, message: str, files: Mapping[str, str | None], **run: Any) -> RunRecord:
        branch = self.github.pulls[number]["head"]["ref"]
        self.repository.commit(message, files, branch=branch)
        self.repository.push(branch)
        self.repository.checkout("main")
        head = self.repository.head(f"refs/heads/{branch}")
        self.repository.update_pull_refs(number, head, "main")
        pull = self.github.set_pr(number, head_sha=head, base_sha=self.repository.head("refs/heads/main"))
        event_name, event = pull_request_event(self.repository, "synchronize", pull)
        return self.runner.run("preview.yml", event_name, event, **run)

    def close_pr(self, number: int, **run: Any) -> RunRecord:
        pull = self.github.set_pr(number, state="closed")
        event_name, event = pull_request_event(self.repository, "closed", pull)
        return self.runner.run("cleanup.yml", event_name, event, **run)

    def schedule(self, workflow: str, **run: Any) -> RunRecord:
        document = load_workflow(self.repository.work / ".github" / "workflows" / workflow)
        cron = document["on"]["schedule"][0]["cron"]
        event_name, event = schedule_event(self.repository, cron)
        return self.runner.run(workflow, event_name, event, **run)

    def dispatch(self, workflow: str, inputs: Mapping[str, str] | None = None, **run: Any) -> RunRecord:
        event_name, event = dispatch_event(self.repository, inputs)
        return self.runner.run(workflow, event_name, event, **run)

    def artifact(self, record: RunRecord, name: str, file: str) -> str:
        """A file of an artifact the run uploaded (its per-run store)."""
        path = self.runner.root / "runs" / str(record.run_id) / "artifacts" / name / file
        if not path.is_file():
            raise WorldError(f"run {record.run_id} uploaded no {name}/{file}")
        return path.read_text()

    def lease_holder(self, stack: str) -> dict[str, Any] | None:
        """The stack's lease in the lock table (workflow/lease.py), while a run holds it."""
        table = foundation_names(PROJECT, ACCOUNT_ID)["lock_table"]
        item = self.aws("dynamodb").get_item(TableName=table, Key={LEASE_KEY_ATTRIBUTE: {"S": lease_key(PROJECT, stack)}}).get("Item")
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None

    def leftover_preview(self, number: int, *, tamper_delete: str | None = None) -> None:
        """A PR stack as preview.yml leaves it, whose cleanup never ran: deployed by the operator's
        engine with the previews' settings into the S3 backend (a run of preview.yml does the
        same, more slowly). `tamper_delete`: a command written into the state as the `delete` of
        the stack's Commands, as a pull request with the preview role could write it."""
        checkout = self.root / "operator" / "checkout"
        subprocess.run(["git", "pull", "--quiet", "--ff-only"], cwd=checkout, check=True)  # noqa: S603,S607  # nosec
        stack = f"preview-pr-{number}"
        previews = self.github.variables_by_environment()["preview"]
        env = {**self.operator_env(previews["PULUMI_BACKEND_URL"]), "DATABASE_URL": self.preview_database_url,
               "ALERT_WEBHOOK_URL": f"{self.endpoints.webhook}/preview"}  # fmt: skip
        self._pulumi("stack", "select", "--create", stack, "--secrets-provider", previews["PULUMI_SECRETS_PROVIDER"],
                     cwd=checkout, env=env)  # fmt: skip
        # As preview.yml runs it: the template is the stack's config file.
        self._pulumi("up", "--yes", "--stack", stack, "--config-file", "Pulumi.preview.yaml", "--skip-preview",
                     cwd=checkout, env=env, timeout=1200)  # fmt: skip
        if tamper_delete is not None:
            exported = self.root / "operator" / f"{stack}.json"
            self._pulumi("stack", "export", "--stack", stack, "--file", str(exported), cwd=checkout, env=env)
            document = json.loads(exported.read_text())
            tampered = 0
            for resource in document["deployment"].get("resources") or []:
                if resource.get("type") == "command:local:Command" and (resource.get("inputs") or {}).get("delete"):
                    resource["inputs"]["delete"] = tamper_delete
                    resource.setdefault("outputs", {})["delete"] = tamper_delete
                    tampered += 1
            if not tampered:
                raise WorldError(f"{stack} has no Command with a delete to tamper with")
            exported.write_text(json.dumps(document))
            self._pulumi("stack", "import", "--stack", stack, "--file", str(exported), cwd=checkout, env=env)

    def wait_for(self, what: str, check, timeout: float = 60.0) -> None:  # noqa: ANN001 - any predicate
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise WorldError(f"{what} did not happen within {timeout:.0f}s")
