"""A loopback stand-in for the GitHub REST API the workflows and their scripts use, and for the
GitHub Actions services act does not provide (the OIDC token service, run records).

    with GitHubStub(repo="org/repo") as github:        # every run's GITHUB_API_URL is github.url
        github.add_pr(12, head_ref="feature", head_sha=sha, base_sha=base)
        ... workflows and scripts talk to github.url with Bearer github.token ...
        github.issues / github.comments(12) / github.run_records      # what the tests assert on

Routes under `/repos/:owner/:repo` (a request without `Authorization: Bearer <token>` gets 401,
another repository 404, as GitHub answers):

    GET   /issues                       ?state=open|closed|all &labels=a,b &sort &direction &per_page &page
                                        issues and pull requests (those carry `pull_request`), Link-paged
    POST  /issues                       {title, body?, labels?}                    -> 201 issue
    GET   /issues/:n   PATCH /issues/:n {state?, state_reason?, title?, body?, labels?}
    GET   /issues/:n/comments           ?per_page &page (oldest first, Link-paged)
    POST  /issues/:n/comments           {body}                                     -> 201 comment
    GET   /issues/comments/:id   PATCH /issues/comments/:id {body}
    POST  /labels                       {name, color?, description?} -> 201, or 422 already_exists
    GET   /labels/:name
    GET   /pulls/:n    PATCH /pulls/:n  {state}
    GET   /actions/runs                 ?created=>=ISO &per_page &page ; {"total_count", "workflow_runs"}
    GET   /actions/runs/:id             one run
    GET   /actions/runs/:id/jobs        {"total_count", "jobs": [{name, conclusion, steps: [...]}]}
    GET   /environments                 {"total_count", "environments": [...]}
    GET   /environments/:name           one environment, deployment_branch_policy as GitHub shows it
    GET   /environments/:name/variables        {"total_count", "variables": [{name, value, ...}]}
    POST  /environments/:name/variables        {name, value} -> 201 (409 when it exists)
    GET|PATCH|DELETE /environments/:name/variables/:var   PATCH {value} -> 204, DELETE -> 204
          (an environment's variables override the repository's of the same name in its jobs:
          the local runner reads them here, `variables_by_environment`)

Objects carry the fields of the real API that callers read (number, title, body, state,
state_reason, labels[].name, user.login/type, html_url, created_at, updated_at, closed_at; runs:
id, name, path, event, head_branch, head_sha, status, conclusion, created_at, run_started_at,
updated_at, html_url, run_attempt, actor.login, pull_requests[].number). What the workflow token
writes is authored by `github-actions[bot]` (type `Bot`), as on GitHub: preview.yml's comment job
finds its own comment by that.

The OIDC token service (what `core.getIDToken` asks through ACTIONS_ID_TOKEN_REQUEST_URL):

    GET /_actions/oidc/token?audience=A&run_id=R&workflow=W&job=J     Bearer <the run's request token>

answers `{"value": <JWT>}` for a job the run registered (`register_run`) with `id-token: write`,
with the claims GitHub's token carries (`oidc_claims`), signed by this stand-in's issuer key: its
`iss` is https://token.actions.githubusercontent.com, its JWKS is served at `/_actions/oidc/jwks`
and registered with moto_server (sandbox/moto_server.py), which checks AssumeRoleWithWebIdentity
against it as STS does. A job without that permission gets 403: GitHub would not have given it
the request variables at all (the configure-aws-credentials stand-in then behaves as upstream
does without them).

`add_run(...)` plants a finished run (the audit tests' fixtures); the workflow runner
(sandbox/workflow_runner.py) records each run it executes with `record_run(...)`, keeping its job
summaries, step outputs and annotations in `run_records` for the tests.
"""

from __future__ import annotations

import copy
import itertools
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sandbox.http_server import Reply, Request, StandIn

TOKEN = "ghs_stubtoken0123456789"  # nosec B105 - the stand-in's fixed token in the audit tests
OIDC_ISSUER = "https://token.actions.githubusercontent.com"
OIDC_TOKEN_PATH = "/_actions/oidc/token"  # nosec B105 - a route
OIDC_JWKS_PATH = "/_actions/oidc/jwks"
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"
_RUNS = re.compile(rf"^{_REPO}/actions/runs/?$")
_RUN = re.compile(rf"^{_REPO}/actions/runs/(?P<id>\d+)(?P<jobs>/jobs)?/?$")
_PULL = re.compile(rf"^{_REPO}/pulls/(?P<number>\d+)/?$")
_ISSUES = re.compile(rf"^{_REPO}/issues/?$")
_ISSUE = re.compile(rf"^{_REPO}/issues/(?P<number>\d+)/?$")
_ISSUE_COMMENTS = re.compile(rf"^{_REPO}/issues/(?P<number>\d+)/comments/?$")
_COMMENT = re.compile(rf"^{_REPO}/issues/comments/(?P<id>\d+)/?$")
_LABELS = re.compile(rf"^{_REPO}/labels/?$")
_LABEL = re.compile(rf"^{_REPO}/labels/(?P<name>[^/]+)/?$")
_ENVIRONMENTS = re.compile(rf"^{_REPO}/environments/?$")
_ENVIRONMENT = re.compile(rf"^{_REPO}/environments/(?P<name>[^/]+)/?$")
_ENVIRONMENT_VARIABLES = re.compile(rf"^{_REPO}/environments/(?P<name>[^/]+)/variables/?$")
_ENVIRONMENT_VARIABLE = re.compile(rf"^{_REPO}/environments/(?P<name>[^/]+)/variables/(?P<var>[^/]+)/?$")
# GitHub's rule for a variable's name (stored upper-cased): letters, digits, _, not a digit first,
# no GITHUB_ prefix.
_VARIABLE_NAME = re.compile(r"^(?!GITHUB_)[A-Z_][A-Z0-9_]*$")
MAX_PER_PAGE = 100


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return iso(datetime.now(UTC))


def _not_found() -> Reply:
    return Reply(404, json={"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})


def _invalid(message: str, errors: list[dict[str, str]] | None = None) -> Reply:
    return Reply(422, json={"message": message, "errors": errors or [], "status": "422"})


@dataclass(frozen=True)
class JobIdentity:
    """What GitHub knows about one job of a run when it issues its OIDC token."""

    environment: str | None
    id_token: bool
    """`permissions: id-token: write` (the runner reads it from the workflow as GitHub does)."""
    job_workflow_ref: str
    """`owner/repo/.github/workflows/<file>@<ref>` of the workflow that defines the job."""


@dataclass
class RunRegistration:
    """A run the workflow runner is executing: its event and each job's identity."""

    run_id: int
    request_token: str
    event_name: str
    event: Mapping[str, Any]
    ref: str
    sha: str
    workflow: str
    workflow_ref: str
    actor: str
    jobs: dict[tuple[str, str], JobIdentity] = field(default_factory=dict)
    """(workflow name, job id) -> identity; a called workflow's jobs under their own workflow name."""


def oidc_subject(repo: str, event_name: str, ref: str, environment: str | None) -> str:
    """The `sub` GitHub puts in a job's token (FACTS.md "GitHub OIDC trust"): the environment
    wins; else every pull_request event has one subject; else the ref."""
    if environment:
        return f"repo:{repo}:environment:{environment}"
    if event_name in ("pull_request", "pull_request_target"):
        return f"repo:{repo}:pull_request"
    return f"repo:{repo}:ref:{ref}"


def oidc_claims(repo: str, run: RunRegistration, job: JobIdentity, audience: str, *, repository_id: int,
                owner_id: int, ttl: int = 300) -> dict[str, Any]:  # fmt: skip
    """The claims of GitHub's Actions ID token for `job` of `run`, as documented by GitHub
    ("About security hardening with OpenID Connect": the example token)."""
    now = int(time.time())
    pull = run.event.get("pull_request") if isinstance(run.event.get("pull_request"), Mapping) else {}
    ref_type = "tag" if run.ref.startswith("refs/tags/") else ("branch" if run.ref.startswith("refs/heads/") else "")
    return {
        "jti": secrets.token_hex(16),
        "sub": oidc_subject(repo, run.event_name, run.ref, job.environment),
        "aud": audience,
        "ref": run.ref,
        "sha": run.sha,
        "repository": repo,
        "repository_owner": repo.split("/")[0],
        "repository_id": str(repository_id),
        "repository_owner_id": str(owner_id),
        "repository_visibility": "private",
        "run_id": str(run.run_id),
        "run_number": str(run.run_id),
        "run_attempt": "1",
        "actor": run.actor,
        "workflow": run.workflow,
        "workflow_ref": run.workflow_ref,
        "workflow_sha": run.sha,
        "job_workflow_ref": job.job_workflow_ref,
        "job_workflow_sha": run.sha,
        "head_ref": str((pull.get("head") or {}).get("ref") or "") if pull else "",
        "base_ref": str((pull.get("base") or {}).get("ref") or "") if pull else "",
        "event_name": run.event_name,
        "ref_type": ref_type,
        **({"environment": job.environment} if job.environment else {}),
        "runner_environment": "self-hosted",
        "iss": OIDC_ISSUER,
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl,
    }


class GitHubStub(StandIn):
    """One repository's issues, pull requests, labels, runs and environments; a context manager."""

    def __init__(self, *, repo: str = "org/repo", token: str = TOKEN, port: int = 0,
                 environments: Mapping[str, Sequence[str] | None] | None = None,
                 repository_id: int = 700001, owner_id: int = 700000) -> None:  # fmt: skip
        self.repo = repo
        self.token = token
        self.repository_id = repository_id
        self.owner_id = owner_id
        self.runs: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, list[dict[str, Any]]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.issues: dict[int, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.run_records: dict[int, Any] = {}
        """run id -> the runner's record of a run it executed (job summaries, outputs, annotations)."""
        self.environments: dict[str, Sequence[str] | None] = dict(environments or {})
        """name -> the branch patterns it may deploy from (None: any branch)."""
        self._variables: dict[str, dict[str, dict[str, Any]]] = {}
        """environment -> variable name -> GitHub's variable object."""
        self._comments: dict[int, dict[str, Any]] = {}
        self._registrations: dict[int, RunRegistration] = {}
        self._ids = itertools.count(9000)
        self._comment_ids = itertools.count(1_000_001)
        self._lock = threading.Lock()
        self._issuer = None
        super().__init__(port=port)

    # --- the OIDC issuer ----------------------------------------------------------------------
    @property
    def issuer(self):
        """The key that signs the Actions ID tokens (a JwtIssuer that is never served on its own)."""
        if self._issuer is None:
            from sandbox.jwt_issuer import JwtIssuer

            self._issuer = JwtIssuer(issuer=OIDC_ISSUER, audience="sts.amazonaws.com")
        return self._issuer

    @property
    def oidc_token_url(self) -> str:
        return f"{self.url}{OIDC_TOKEN_PATH}"

    @property
    def oidc_jwks_url(self) -> str:
        return f"{self.url}{OIDC_JWKS_PATH}"

    # --- planting and reading what the repository holds ---------------------------------------
    def next_run_id(self) -> int:
        return next(self._ids)

    def add_run(
        self,
        workflow: str,
        *,
        conclusion: str = "success",
        event: str = "push",
        branch: str = "main",
        sha: str = "0" * 40,
        actor: str = "octocat",
        started: datetime | None = None,
        minutes: float = 5,
        pr: int | None = None,
        failed_step: tuple[str, str] | None = None,
        run_id: int | None = None,
        path: str | None = None,
        jobs: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A completed run of `.github/workflows/<workflow>.yml`; `failed_step` = (job, step) that
        failed; `jobs` replaces the one job made up from `failed_step`."""
        started = started or datetime.now(UTC) - timedelta(hours=1)
        run_id = run_id if run_id is not None else next(self._ids)
        run = {
            "id": run_id,
            "name": workflow,
            "path": path or f".github/workflows/{workflow}.yml",
            "event": event,
            "head_branch": branch,
            "head_sha": sha,
            "status": "completed",
            "conclusion": conclusion,
            "run_attempt": 1,
            "created_at": iso(started),
            "run_started_at": iso(started),
            "updated_at": iso(started + timedelta(minutes=minutes)),
            "html_url": f"https://github.com/{self.repo}/actions/runs/{run_id}",
            "actor": {"login": actor},
            "triggering_actor": {"login": actor},
            "pull_requests": [{"number": pr}] if pr else [],
        }
        if jobs is None:
            job_name, step_name = failed_step or (workflow, "")
            steps = [{"name": "Set up job", "number": 1, "status": "completed", "conclusion": "success"}]
            if failed_step:
                steps.append({"name": step_name, "number": 2, "status": "completed", "conclusion": "failure"})
            jobs = [
                {"id": run_id * 10, "run_id": run_id, "name": job_name, "status": "completed",
                 "conclusion": "failure" if failed_step else conclusion, "steps": steps}
            ]  # fmt: skip
        with self._lock:
            self.runs[run_id] = run
            self.jobs[run_id] = jobs
        return run

    def add_pr(self, number: int, *, state: str = "open", closed: datetime | None = None, head_ref: str = "",
               head_sha: str = "", base_ref: str = "main", base_sha: str = "", title: str = "",
               user: str = "octocat") -> dict[str, Any]:  # fmt: skip
        """A pull request (and the issue GitHub keeps under the same number)."""
        now = _now()
        pull = {
            "number": number,
            "state": state,
            "title": title or f"PR {number}",
            "body": "",
            "created_at": now,
            "updated_at": now,
            "closed_at": iso(closed) if closed else (now if state == "closed" else None),
            "merged_at": None,
            "merged": False,
            "html_url": f"https://github.com/{self.repo}/pull/{number}",
            "user": {"login": user, "type": "User"},
            "head": {"ref": head_ref, "sha": head_sha, "repo": {"full_name": self.repo}},
            "base": {"ref": base_ref, "sha": base_sha, "repo": {"full_name": self.repo}},
        }
        with self._lock:
            self.pulls[number] = pull
            self.issues[number] = self._new_issue(number, pull["title"], "", [], user={"login": user, "type": "User"},
                                                  pull_request=True)  # fmt: skip
            self.issues[number]["state"] = state
        return pull

    def set_pr(self, number: int, **changes: Any) -> dict[str, Any]:
        """Update a pull request as a person would on GitHub (`state="closed"`, a new head)."""
        with self._lock:
            pull = self.pulls[number]
            for key, value in changes.items():
                if key in ("head_sha", "head_ref", "base_sha", "base_ref"):
                    side, attribute = key.split("_")
                    pull[side][attribute] = value
                else:
                    pull[key] = value
            if changes.get("state") == "closed":
                pull["closed_at"] = _now()
                self.issues[number].update(state="closed", closed_at=pull["closed_at"])
            elif changes.get("state") == "open":
                pull["closed_at"] = None
                self.issues[number].update(state="open", closed_at=None)
            pull["updated_at"] = _now()
            return copy.deepcopy(pull)

    def close_issue(self, number: int, reason: str = "completed") -> None:
        """What a person does when the quarantine is cleared."""
        with self._lock:
            self.issues[number].update(state="closed", state_reason=reason, closed_at=_now(), updated_at=_now())

    def open_issues(self, label: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(i) for i in self.issues.values() if i["state"] == "open" and "pull_request" not in i
                    and (label is None or label in [lab["name"] for lab in i["labels"]])]  # fmt: skip

    def comments(self, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._comments.values() if c["issue_number"] == number]

    def all_comments(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._comments.values()]

    # --- runs the workflow runner executes ----------------------------------------------------
    def register_run(self, registration: RunRegistration) -> None:
        with self._lock:
            self._registrations[registration.run_id] = registration

    def finish_run(self, run_id: int) -> None:
        """The run's request token stops working, as a job's does when it ends."""
        with self._lock:
            self._registrations.pop(run_id, None)

    def record_run(self, run: dict[str, Any], jobs: list[dict[str, Any]], record: Any) -> None:
        with self._lock:
            self.runs[run["id"]] = run
            self.jobs[run["id"]] = jobs
            self.run_records[run["id"]] = record

    # --- the API --------------------------------------------------------------------------------
    def _answer(self, request: Request) -> Reply:
        if request.path == OIDC_JWKS_PATH and request.method == "GET":
            return Reply(200, json={"keys": [self.issuer.jwk]})
        if request.path == OIDC_TOKEN_PATH and request.method == "GET":
            return self._oidc_token(request)
        if request.headers.get("authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            return Reply(401, json={"message": "Bad credentials", "status": "401"})
        match = re.match(_REPO, request.path)
        if match is None or match["repo"].lower() != self.repo.lower():
            return _not_found()
        with self._lock:
            for pattern, handler in self._routes():
                if m := pattern.match(request.path):
                    return handler(request, m)
        return _not_found()

    def _routes(self):
        return (
            (_RUNS, self._runs_route),
            (_RUN, self._run_route),
            (_PULL, self._pull_route),
            (_ISSUES, self._issues_route),
            (_ISSUE_COMMENTS, self._issue_comments_route),
            (_COMMENT, self._comment_route),
            (_ISSUE, self._issue_route),
            (_LABELS, self._labels_route),
            (_LABEL, self._label_route),
            (_ENVIRONMENTS, self._environments_route),
            (_ENVIRONMENT, self._environment_route),
            (_ENVIRONMENT_VARIABLES, self._environment_variables_route),
            (_ENVIRONMENT_VARIABLE, self._environment_variable_route),
        )

    # pagination as GitHub does it: per_page (max 100), page, and a Link header with rel="next"/"last"
    def _page(self, request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        def arg(key: str, default: str) -> str:
            return (request.query.get(key) or [default])[0]

        try:
            per_page = max(1, min(int(arg("per_page", "30")), MAX_PER_PAGE))
            page = max(1, int(arg("page", "1")))
        except ValueError:
            per_page, page = 30, 1
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        headers: dict[str, str] = {}
        if page < last:
            query = {k: v[0] for k, v in request.query.items()}
            links = []
            for rel, number in (("next", page + 1), ("last", last)):
                links.append(f'<{self.url}{request.path}?{urlencode({**query, "page": number, "per_page": per_page})}>; rel="{rel}"')
            headers["Link"] = ", ".join(links)
        return chunk, headers

    def _runs_route(self, request: Request, _: re.Match[str]) -> Reply:
        if request.method != "GET":
            return _not_found()
        runs = sorted(self.runs.values(), key=lambda r: (r["created_at"], r["id"]), reverse=True)
        created = (request.query.get("created") or [""])[0]
        if created.startswith(">="):
            runs = [r for r in runs if r["created_at"] >= created[2:]]
        chunk, headers = self._page(request, runs)
        return Reply(200, json={"total_count": len(runs), "workflow_runs": copy.deepcopy(chunk)}, headers=headers)

    def _run_route(self, request: Request, m: re.Match[str]) -> Reply:
        run_id = int(m["id"])
        if request.method != "GET" or run_id not in self.runs:
            return _not_found()
        if m["jobs"]:
            jobs = self.jobs.get(run_id, [])
            return Reply(200, json={"total_count": len(jobs), "jobs": copy.deepcopy(jobs)})
        return Reply(200, json=copy.deepcopy(self.runs[run_id]))

    def _pull_route(self, request: Request, m: re.Match[str]) -> Reply:
        number = int(m["number"])
        if number not in self.pulls:
            return _not_found()
        if request.method == "PATCH":
            body = request.json or {}
            if "state" in body and body["state"] in ("open", "closed"):
                self.pulls[number]["state"] = body["state"]
                self.issues[number]["state"] = body["state"]
                self.pulls[number]["closed_at"] = _now() if body["state"] == "closed" else None
        elif request.method != "GET":
            return _not_found()
        return Reply(200, json=copy.deepcopy(self.pulls[number]))

    def _new_issue(self, number: int, title: str, body: str, labels: Iterable[str], *, user: Mapping[str, Any],
                   pull_request: bool = False) -> dict[str, Any]:  # fmt: skip
        now = _now()
        issue = {
            "number": number,
            "id": 5_000_000 + number,
            "title": title,
            "body": body,
            "state": "open",
            "state_reason": None,
            "labels": [self._label_object(name) for name in labels],
            "user": dict(user),
            "comments": 0,
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
            "html_url": f"https://github.com/{self.repo}/{'pull' if pull_request else 'issues'}/{number}",
        }
        if pull_request:
            issue["pull_request"] = {"url": f"{self.url}/repos/{self.repo}/pulls/{number}"}
        return issue

    def _label_object(self, name: str) -> dict[str, Any]:
        label = self.labels.get(name)
        if label is None:  # GitHub creates an unknown label on the fly, with a default color
            label = self.labels[name] = {"id": 7_000_000 + len(self.labels), "name": name, "color": "ededed", "description": None}
        return copy.deepcopy(label)

    def _issues_route(self, request: Request, _: re.Match[str]) -> Reply:
        if request.method == "POST":
            body = request.json or {}
            title = body.get("title")
            if not isinstance(title, str) or not title:
                return _invalid("Validation Failed", [{"resource": "Issue", "code": "missing_field", "field": "title"}])
            number = max([0, *self.issues]) + 1
            labels = [str(label) for label in body.get("labels") or []]
            issue = self._new_issue(number, title, str(body.get("body") or ""), labels, user=BOT)
            self.issues[number] = issue
            return Reply(201, json=copy.deepcopy(issue))
        if request.method != "GET":
            return _not_found()

        def arg(key: str, default: str = "") -> str:
            return (request.query.get(key) or [default])[0]

        state = arg("state", "open")
        wanted = [label for label in arg("labels").split(",") if label]
        items = [
            i for i in self.issues.values()
            if (state == "all" or i["state"] == state) and all(w in [lab["name"] for lab in i["labels"]] for w in wanted)
        ]  # fmt: skip
        key = {"created": "created_at", "updated": "updated_at", "comments": "comments"}.get(arg("sort", "created"), "created_at")
        items.sort(key=lambda i: (i[key], i["number"]), reverse=arg("direction", "desc") != "asc")
        chunk, headers = self._page(request, items)
        return Reply(200, json=copy.deepcopy(chunk), headers=headers)

    def _issue_route(self, request: Request, m: re.Match[str]) -> Reply:
        number = int(m["number"])
        issue = self.issues.get(number)
        if issue is None:
            return _not_found()
        if request.method == "PATCH":
            body = request.json or {}
            if body.get("state") in ("open", "closed"):
                issue["state"] = body["state"]
                issue["closed_at"] = _now() if body["state"] == "closed" else None
                issue["state_reason"] = body.get("state_reason") or ("completed" if body["state"] == "closed" else "reopened")
            for key in ("title", "body"):
                if isinstance(body.get(key), str):
                    issue[key] = body[key]
            if isinstance(body.get("labels"), list):
                issue["labels"] = [self._label_object(str(name)) for name in body["labels"]]
            issue["updated_at"] = _now()
        elif request.method != "GET":
            return _not_found()
        return Reply(200, json=copy.deepcopy(issue))

    def _issue_comments_route(self, request: Request, m: re.Match[str]) -> Reply:
        number = int(m["number"])
        if number not in self.issues:
            return _not_found()
        if request.method == "POST":
            body = (request.json or {}).get("body")
            if not isinstance(body, str) or not body:
                return _invalid("Validation Failed", [{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
            comment_id = next(self._comment_ids)
            now = _now()
            comment = {
                "id": comment_id,
                "issue_number": number,
                "body": body,
                "user": dict(BOT),
                "created_at": now,
                "updated_at": now,
                "html_url": f"{self.issues[number]['html_url']}#issuecomment-{comment_id}",
                "issue_url": f"{self.url}/repos/{self.repo}/issues/{number}",
            }
            self._comments[comment_id] = comment
            self.issues[number]["comments"] += 1
            return Reply(201, json=self._public(comment))
        if request.method != "GET":
            return _not_found()
        items = sorted((c for c in self._comments.values() if c["issue_number"] == number), key=lambda c: c["id"])
        chunk, headers = self._page(request, items)
        return Reply(200, json=[self._public(c) for c in chunk], headers=headers)

    def _comment_route(self, request: Request, m: re.Match[str]) -> Reply:
        comment = self._comments.get(int(m["id"]))
        if comment is None:
            return _not_found()
        if request.method == "PATCH":
            body = (request.json or {}).get("body")
            if not isinstance(body, str) or not body:
                return _invalid("Validation Failed", [{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
            comment.update(body=body, updated_at=_now())
        elif request.method == "DELETE":
            del self._comments[comment["id"]]
            return Reply(204, body=b"")
        elif request.method != "GET":
            return _not_found()
        return Reply(200, json=self._public(comment))

    @staticmethod
    def _public(comment: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in comment.items() if k != "issue_number"}

    def _labels_route(self, request: Request, _: re.Match[str]) -> Reply:
        if request.method == "GET":
            return Reply(200, json=copy.deepcopy(list(self.labels.values())))
        if request.method != "POST":
            return _not_found()
        body = request.json or {}
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return _invalid("Validation Failed", [{"resource": "Label", "code": "missing_field", "field": "name"}])
        if name in self.labels:
            return _invalid("Validation Failed", [{"resource": "Label", "code": "already_exists", "field": "name"}])
        label = {"id": 7_000_000 + len(self.labels), "name": name, "color": str(body.get("color") or "ededed"),
                 "description": body.get("description")}  # fmt: skip
        self.labels[name] = label
        return Reply(201, json=copy.deepcopy(label))

    def _label_route(self, request: Request, m: re.Match[str]) -> Reply:
        label = self.labels.get(m["name"])
        if request.method != "GET" or label is None:
            return _not_found()
        return Reply(200, json=copy.deepcopy(label))

    def _environment(self, name: str) -> dict[str, Any]:
        branches = self.environments[name]
        policy = None if branches is None else {"protected_branches": False, "custom_branch_policies": True}
        return {
            "name": name,
            "html_url": f"https://github.com/{self.repo}/deployments/activity_log?environments_filter={name}",
            "protection_rules": [] if branches is None else [{"type": "branch_policy"}],
            "deployment_branch_policy": policy,
            "branch_policies": [] if branches is None else [{"name": b, "type": "branch"} for b in branches],
        }

    def _environments_route(self, request: Request, _: re.Match[str]) -> Reply:
        if request.method != "GET":
            return _not_found()
        environments = [self._environment(name) for name in sorted(self.environments)]
        return Reply(200, json={"total_count": len(environments), "environments": environments})

    def _environment_route(self, request: Request, m: re.Match[str]) -> Reply:
        if request.method != "GET" or m["name"] not in self.environments:
            return _not_found()
        return Reply(200, json=self._environment(m["name"]))

    def variables_by_environment(self) -> dict[str, dict[str, str]]:
        """Each environment's variables, name -> value, as its jobs read them."""
        with self._lock:
            return {env: {n: str(v["value"]) for n, v in found.items()} for env, found in self._variables.items()}

    def _environment_variables_route(self, request: Request, m: re.Match[str]) -> Reply:
        if m["name"] not in self.environments:
            return _not_found()
        found = self._variables.setdefault(m["name"], {})
        if request.method == "GET":
            variables = [copy.deepcopy(found[n]) for n in sorted(found)]
            return Reply(200, json={"total_count": len(variables), "variables": variables})
        if request.method != "POST":
            return _not_found()
        body = request.json or {}
        name, value = str(body.get("name") or "").upper(), body.get("value")
        if not _VARIABLE_NAME.match(name) or not isinstance(value, str):
            return _invalid("Invalid request.", [{"resource": "Variable", "code": "invalid", "field": "name" if value else "value"}])
        if name in found:
            return Reply(409, json={"message": "Already exists - Variable already exists", "status": "409"})
        found[name] = {"name": name, "value": value, "created_at": _now(), "updated_at": _now()}
        return Reply(201, json={})

    def _environment_variable_route(self, request: Request, m: re.Match[str]) -> Reply:
        found = self._variables.get(m["name"], {})
        variable = found.get(m["var"].upper())
        if m["name"] not in self.environments or variable is None:
            return _not_found()
        if request.method == "GET":
            return Reply(200, json=copy.deepcopy(variable))
        if request.method == "PATCH":
            value = (request.json or {}).get("value")
            if not isinstance(value, str):
                return _invalid("Invalid request.", [{"resource": "Variable", "code": "invalid", "field": "value"}])
            variable.update(value=value, updated_at=_now())
            return Reply(204)
        if request.method == "DELETE":
            del found[variable["name"]]
            return Reply(204)
        return _not_found()

    # the OIDC token service --------------------------------------------------------------------
    def _oidc_token(self, request: Request) -> Reply:
        def arg(key: str) -> str:
            return (request.query.get(key) or [""])[0]

        with self._lock:
            run = self._registrations.get(int(arg("run_id"))) if arg("run_id").isdigit() else None
        if run is None or request.headers.get("authorization") != f"Bearer {run.request_token}":
            return Reply(401, json={"message": "Bad credentials: not a running job's request token"})
        job = run.jobs.get((arg("workflow"), arg("job")))
        if job is None:
            return Reply(404, json={"message": f"no job {arg('job')!r} of workflow {arg('workflow')!r} in run {run.run_id}"})
        if not job.id_token:
            return Reply(403, json={"message": f"job {arg('job')!r} lacks the id-token: write permission"})
        audience = arg("audience") or f"https://github.com/{self.repo.split('/')[0]}"
        claims = oidc_claims(self.repo, run, job, audience, repository_id=self.repository_id, owner_id=self.owner_id)
        return Reply(200, json={"value": self.issuer.sign(claims), "count": 1})
