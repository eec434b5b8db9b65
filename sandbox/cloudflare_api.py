"""A loopback stand-in for the Cloudflare v4 API (Pages), which tests cannot reach.

It speaks the request and response shapes `wrangler pages deploy` (4.86.0) and `steps.pages`
use, so the real wrangler runs against it with `CLOUDFLARE_API_BASE_URL=<stub.api_base>`:

    GET    /accounts/:acct/pages/projects/:project                     project (404 code 8000007)
    GET    /accounts/:acct/pages/projects/:project/upload-token        {"jwt": ...} for the assets API
    POST   /pages/assets/check-missing      (Bearer upload JWT)        hashes not stored yet
    POST   /pages/assets/upload             (Bearer upload JWT)        [{key, value (base64), ...}]
    POST   /pages/assets/upsert-hashes      (Bearer upload JWT)        true
    POST   /accounts/:acct/pages/projects/:project/deployments         multipart: manifest, branch, ...
    GET    /accounts/:acct/pages/projects/:project/deployments         ?page=&per_page= (+ result_info)
    GET    /accounts/:acct/pages/projects/:project/deployments/:id     deployment with latest_stage
    DELETE /accounts/:acct/pages/projects/:project/deployments/:id     ?force=true needed when aliased
    GET    /user/tokens/verify, /user                                  token status, the user (wrangler
                                                                       asks both after an auth error)

Everything answers in the v4 envelope `{"success", "errors", "messages", "result"[, "result_info"]}`.
A wrong `Authorization: Bearer` token on an account route gets what Cloudflare sends for it:
403 with code 10000 "Authentication error" (and `/user/tokens/verify` then answers 401 code 1000).

Test hooks: `fault(method, pattern, *replies)` makes the next requests matching a path regex
answer the given `Reply`s first (503, 429 + Retry-After, a `{"success": false}` code...);
`stages` scripts what successive GETs of a deployment report as `latest_stage`; `add_deployment`
seeds deployments; `deployments`, `assets` (hash -> bytes), `asset_names` (path -> hash of the
last manifest) and `requests` (every request, from `StubServer`) show what arrived.

Which deployments Cloudflare refuses to delete is modelled on its documented behaviour (an
aliased deployment needs `force=true`; the project's current production deployment cannot be
deleted); the exact error codes of those refusals are the stub's own.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.http_stub import Reply, Request, StubServer

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "stub-token-0f9e8d7c6b5a"
PREFIX = "/client/v4"

_ACCOUNT_PATH = re.compile(rf"^{PREFIX}/accounts/(?P<acct>[^/]+)/pages/projects/(?P<project>[^/]+)(?P<rest>/.*)?$")


def envelope(result: Any = None, **extra: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result, **extra}


def error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """A Cloudflare v4 error reply."""
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return Reply(status, json=body, headers=headers or {})


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.stub"


def _multipart(request: Request) -> dict[str, str | bytes]:
    content_type = request.headers.get("content-type", "")
    raw = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + request.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields: dict[str, str | bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields[name] = payload if part.get_filename() else payload.decode()
    return fields


@dataclass
class Deployment:
    id: str
    project: str
    branch: str
    environment: str
    created_on: str
    manifest: dict[str, str] = field(default_factory=dict)
    commit_hash: str = ""

    def short_id(self) -> str:
        return self.id[:8]

    def url(self) -> str:
        return f"https://{self.short_id()}.{self.project}.pages.dev"

    def aliases(self) -> list[str]:
        slug = re.sub(r"[^a-z0-9-]", "-", self.branch.lower())[:28].strip("-")
        return [f"https://{slug}.{self.project}.pages.dev"]

    def to_api(self, stage: dict[str, Any], production_branch: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id(),
            "project_name": self.project,
            "environment": self.environment,
            "url": self.url(),
            "aliases": self.aliases(),
            "production_branch": production_branch,
            "created_on": self.created_on,
            "modified_on": self.created_on,
            "deployment_trigger": {
                "type": "ad_hoc",
                "metadata": {"branch": self.branch, "commit_hash": self.commit_hash, "commit_message": ""},
            },
            "latest_stage": stage,
            "stages": [
                {"name": "queued", "status": "success"},
                {"name": "initialize", "status": "success"},
                {"name": "clone_repo", "status": "success"},
                {"name": "build", "status": "success"},
                stage,
            ],
            "is_skipped": False,
        }


SUCCESS_STAGE = {"name": "deploy", "status": "success"}


class CloudflareStub:
    """The stand-in's state and request handling; use as a context manager (it owns a StubServer)."""

    def __init__(self, *, project: str = "webstack-site", production_branch: str = "main", token: str = TOKEN):
        self.project = project
        self.production_branch = production_branch
        self.token = token
        self.projects = {project: production_branch}
        self.deployments: dict[str, Deployment] = {}
        self.assets: dict[str, bytes] = {}
        self.asset_names: dict[str, str] = {}
        self.stages: list[dict[str, Any]] = []
        """`latest_stage` values successive deployment GETs report before SUCCESS_STAGE (consumed)."""
        self.deleted: list[tuple[str, bool]] = []
        """(deployment id, force) of every successful DELETE."""
        self._faults: list[tuple[str, re.Pattern[str], list[Any]]] = []
        self._clock = itertools.count()
        self._lock = threading.Lock()
        self._server = StubServer()
        self._server.script(self._answer)

    # lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> CloudflareStub:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def api_base(self) -> str:
        """What `CLOUDFLARE_API_BASE_URL` is set to."""
        return self._server.url + PREFIX

    @property
    def requests(self) -> list[Request]:
        return self._server.requests

    def calls(self) -> list[str]:
        """`METHOD path` of every request, the API prefix and account/project stripped for reading."""
        out = []
        for r in self.requests:
            path = r.path.removeprefix(PREFIX).replace(f"/accounts/{ACCOUNT}/pages/projects/{self.project}", "/P")
            out.append(f"{r.method} {path}")
        return out

    # scripting --------------------------------------------------------------------------------
    def fault(self, method: str, pattern: str, *replies: Reply | Callable[[Request], Reply]) -> None:
        """Answer the next len(replies) `method` ("*": any) requests whose path (without /client/v4) matches.

        A reply may be a function of the request (it may script further faults)."""
        with self._lock:
            self._faults.append((method.upper(), re.compile(pattern), list(replies)))

    def add_deployment(
        self, branch: str, *, environment: str | None = None, project: str | None = None, age_minutes: int = 0
    ) -> Deployment:
        project = project or self.project
        environment = environment or ("production" if branch == self.projects[project] else "preview")
        when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=next(self._clock) - age_minutes)
        deployment = Deployment(
            id=str(uuid.uuid4()),
            project=project,
            branch=branch,
            environment=environment,
            created_on=when.isoformat().replace("+00:00", "Z"),
        )
        self.deployments[deployment.id] = deployment
        return deployment

    def of_branch(self, branch: str) -> list[Deployment]:
        return [d for d in self.deployments.values() if d.branch == branch]

    def production_deployment(self, project: str | None = None) -> Deployment | None:
        project = project or self.project
        live = [d for d in self.deployments.values() if d.project == project and d.environment == "production"]
        return max(live, key=lambda d: d.created_on) if live else None

    # handling ---------------------------------------------------------------------------------
    def _answer(self, request: Request) -> Reply:
        path = request.path.removeprefix(PREFIX)
        fault = None
        with self._lock:
            for method, pattern, replies in self._faults:
                if replies and method in ("*", request.method) and pattern.search(path):
                    fault = replies.pop(0)
                    break
        if fault is not None:
            return fault(request) if callable(fault) else fault
        if path in ("/user/tokens/verify", "/user"):
            return self._user(request, path)
        if path.startswith("/pages/assets/"):
            return self._assets(request, path.removeprefix("/pages/assets/"))
        match = _ACCOUNT_PATH.match(request.path)
        if not match:
            return error(404, 7000, "No route for that URI")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(403, 10000, "Authentication error")
        if match["acct"] != ACCOUNT:
            return error(403, 10000, "Authentication error")
        project = match["project"]
        if project not in self.projects:
            return error(404, 8000007, "Project not found. The specified project name does not match any of your existing projects.")
        rest = match["rest"] or ""
        with self._lock:
            return self._project_route(request, project, rest)

    def _user(self, request: Request, path: str) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, 1000, "Invalid API Token")
        if path == "/user":
            return Reply(200, json=envelope({"id": "stub-user", "email": "ci@example.com"}))
        return Reply(200, json=envelope({"id": "stub-token-id", "status": "active"}))

    def _assets(self, request: Request, action: str) -> Reply:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.count(".") != 2:
            return error(401, 8000013, "Unauthorized")
        body = request.json
        if action == "check-missing":
            return Reply(200, json=envelope([h for h in body["hashes"] if h not in self.assets]))
        if action == "upload":
            for item in body:
                self.assets[item["key"]] = base64.b64decode(item["value"])
            return Reply(200, json=envelope({"successful_key_count": len(body), "unsuccessful_keys": []}))
        if action == "upsert-hashes":
            return Reply(200, json=envelope(True))
        return error(404, 7000, "No route for that URI")

    def _project_api(self, project: str) -> dict[str, Any]:
        production = self.production_deployment(project)
        production_api = production.to_api(SUCCESS_STAGE, self.projects[project]) if production else None
        newest = max((d for d in self.deployments.values() if d.project == project), key=lambda d: d.created_on, default=None)
        config = {"compatibility_date": "2024-01-01", "compatibility_flags": [], "env_vars": {}}
        return {
            "id": hashlib.sha256(project.encode()).hexdigest()[:32],
            "name": project,
            "subdomain": f"{project}.pages.dev",
            "production_branch": self.projects[project],
            "domains": [f"{project}.pages.dev"],
            "created_on": "2026-01-01T00:00:00Z",
            "deployment_configs": {"production": dict(config), "preview": dict(config)},
            "canonical_deployment": production_api,
            "latest_deployment": newest.to_api(SUCCESS_STAGE, self.projects[project]) if newest else None,
            "source": None,
        }

    def _project_route(self, request: Request, project: str, rest: str) -> Reply:
        production_branch = self.projects[project]
        if rest == "" and request.method == "GET":
            return Reply(200, json=envelope(self._project_api(project)))
        if rest == "/upload-token" and request.method == "GET":
            claims = {"exp": int(time.time()) + 3600, "max_file_count_allowed": 20000, "sub": project}
            return Reply(200, json=envelope({"jwt": _jwt(claims)}))
        if rest == "/deployments" and request.method == "POST":
            fields = _multipart(request)
            manifest = json.loads(fields["manifest"])
            missing = sorted(name for name, h in manifest.items() if h not in self.assets)
            if missing:
                return error(400, 8000009, f"Assets were not uploaded: {missing[:3]}")
            branch = str(fields.get("branch") or production_branch)
            deployment = self.add_deployment(branch, project=project)
            deployment.manifest = manifest
            deployment.commit_hash = str(fields.get("commit_hash") or "")
            self.asset_names = dict(manifest)
            return Reply(200, json=envelope(deployment.to_api({"name": "queued", "status": "active"}, production_branch)))
        if rest == "/deployments" and request.method == "GET":
            return self._list(request, project)
        deployment_id = rest.removeprefix("/deployments/")
        if rest.startswith("/deployments/") and "/" not in deployment_id:
            deployment = self.deployments.get(deployment_id)
            if deployment is None or deployment.project != project:
                return error(404, 8000009, "The deployment ID you have specified does not exist. Update the deployment ID and try again.")
            if request.method == "GET":
                stage = self.stages.pop(0) if self.stages else SUCCESS_STAGE
                return Reply(200, json=envelope(deployment.to_api(stage, production_branch)))
            if request.method == "DELETE":
                return self._delete(request, deployment)
        return error(404, 7000, f"No route for {request.method} {rest or '/'}")

    def _list(self, request: Request, project: str) -> Reply:
        page = int(request.query.get("page", ["1"])[0])
        per_page = int(request.query.get("per_page", ["25"])[0])
        env = request.query.get("env", [None])[0]
        items = sorted(
            (d for d in self.deployments.values() if d.project == project and env in (None, d.environment)),
            key=lambda d: d.created_on,
            reverse=True,
        )
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        production_branch = self.projects[project]
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items), "total_pages": total_pages}
        return Reply(200, json=envelope([d.to_api(SUCCESS_STAGE, production_branch) for d in chunk], result_info=info))

    def _delete(self, request: Request, deployment: Deployment) -> Reply:
        force = request.query.get("force", ["false"])[0] == "true"
        production = self.production_deployment(deployment.project)
        if production is not None and production.id == deployment.id:
            return error(400, 8000034, "You cannot delete the latest production deployment.")
        if not force:
            return error(400, 8000035, "This deployment has aliases; use ?force=true to delete it anyway.")
        del self.deployments[deployment.id]
        self.deleted.append((deployment.id, force))
        return Reply(200, json=envelope(None))


@pytest.fixture
def cloudflare() -> Iterator[CloudflareStub]:
    """A CloudflareStub with project `webstack-site` (production branch `main`) and no deployments."""
    with CloudflareStub() as stub:
        yield stub
