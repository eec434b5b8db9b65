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

and, for the stand-in `cloudflare` provider (sandbox/providers/cloudflare.py):

    GET    /accounts/:acct/pages/projects                              list projects
    POST   /accounts/:acct/pages/projects                              create {name, production_branch, ...}
                                                                       (409 code 8000002 when it exists)
    PATCH  /accounts/:acct/pages/projects/:project                     change production_branch, configs
    DELETE /accounts/:acct/pages/projects/:project                     the project, its deployments, domains
    GET    /accounts/:acct/pages/projects/:project/domains             custom domains
    POST   /accounts/:acct/pages/projects/:project/domains             attach {name} (active at once)
    GET    /accounts/:acct/pages/projects/:project/domains/:name       one domain (404 code 8000018)
    DELETE /accounts/:acct/pages/projects/:project/domains/:name       detach
    GET    /zones, /zones/:zone                                        ?name= ; the zones the stand-in knows
    GET    /zones/:zone/dns_records                                    ?name=&type=&content=&page=&per_page=
    POST   /zones/:zone/dns_records                                    create (a CNAME excludes other
                                                                       records of its name: code 81053)
    GET    /zones/:zone/dns_records/:id                                one record (404 code 81044)
    PUT    /zones/:zone/dns_records/:id                                overwrite; PATCH: change given fields
    DELETE /zones/:zone/dns_records/:id                                {"id": ...}

and, for the audit report (workflow/audit):

    GET    /accounts/:acct/logs/audit                                  Audit Logs v2: ?since=&before= (both
                                                                       required), &limit=&cursor=; one entry per
                                                                       successful Pages or DNS write, with the
                                                                       token that made it (actor.token_id)

More tokens than the pipeline's (`add_token(token, token_id)`, e.g. someone's dashboard-made
token) may write; `audit_log` lists what each did.

Zones are fixed when the stand-in starts (`zones={id: name}`, default ZONE -> example.com, the
zone of the committed stack files); record names are stored fully qualified ("app" and "@" are
expanded as Cloudflare does). `dns_records(name=None, type=None)` lists records in Python (what a
loopback DNS server answers from); the server's own state is only in memory.

Run as a process: `python -m sandbox.cloudflare_api [--port N] [--token T] [--zone ID=NAME]...
[--project NAME]` serves in the foreground and prints `CLOUDFLARE_API_BASE_URL=<base>` once it
listens (no project exists unless `--project` names one: the provider creates it).

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

from sandbox.http_server import Reply, Request, StubServer

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "stub-token-0f9e8d7c6b5a"
ZONE = "fedcba9876543210fedcba9876543210"
ZONE_NAME = "example.com"
PREFIX = "/client/v4"

_ACCOUNT_PATH = re.compile(rf"^{PREFIX}/accounts/(?P<acct>[^/]+)/pages/projects/(?P<project>[^/]+)(?P<rest>/.*)?$")
_PROJECTS_PATH = re.compile(rf"^{PREFIX}/accounts/(?P<acct>[^/]+)/pages/projects/?$")
_ZONE_PATH = re.compile(rf"^{PREFIX}/zones(?:/(?P<zone>[^/]+)(?P<rest>/.*)?)?/?$")
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,56}[a-z0-9]$|^[a-z0-9]$")
RECORD_TYPES = {"A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR", "NS",
                "PTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI"}  # fmt: skip
PROXIABLE = {"A", "AAAA", "CNAME"}


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
_RECORD_FIELDS = {"type", "name", "content", "ttl", "proxied", "comment", "tags", "settings", "priority", "data"}


class CloudflareStub:
    """The stand-in's state and request handling; use as a context manager (it owns a StubServer)."""

    def __init__(
        self,
        *,
        project: str | None = "webstack-site",
        production_branch: str = "main",
        token: str = TOKEN,
        zones: dict[str, str] | None = None,
        port: int = 0,
    ):
        self.project = project or ""
        self.production_branch = production_branch
        self.token = token
        self.projects: dict[str, str] = {project: production_branch} if project else {}
        """name -> production branch of every Pages project."""
        self.project_settings: dict[str, dict[str, Any]] = {}
        """name -> what a create/PATCH set besides the branch (build_config, deployment_configs, ...)."""
        self.domains: dict[str, dict[str, dict[str, Any]]] = {}
        """project -> domain name -> the custom domain as the API shows it."""
        self.zones: dict[str, str] = dict(zones) if zones is not None else {ZONE: ZONE_NAME}
        """zone id -> zone name."""
        self.records: dict[str, dict[str, dict[str, Any]]] = {zone: {} for zone in self.zones}
        """zone id -> record id -> the DNS record as the API shows it."""
        self.deployments: dict[str, Deployment] = {}
        self.assets: dict[str, bytes] = {}
        self.asset_names: dict[str, str] = {}
        self.stages: list[dict[str, Any]] = []
        """`latest_stage` values successive deployment GETs report before SUCCESS_STAGE (consumed)."""
        self.deleted: list[tuple[str, bool]] = []
        """(deployment id, force) of every successful DELETE."""
        self.token_ids: dict[str, str] = {token: "stub-token-id"}
        """token -> its id, as `/user/tokens/verify` and the audit log show it."""
        self.audit_log: list[dict[str, Any]] = []
        """Audit Logs v2 entries, oldest first."""
        self._faults: list[tuple[str, re.Pattern[str], list[Any]]] = []
        self._clock = itertools.count()
        self._lock = threading.Lock()
        self._server = StubServer(port=port)
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

    def dns_records(self, name: str | None = None, type: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        """Every DNS record of every zone (copies), optionally only those of a FQDN and/or type."""
        with self._lock:
            found = [dict(r) for zone in self.records.values() for r in zone.values()]
        wanted = name.rstrip(".").lower() if name else None
        return [
            r for r in found
            if (wanted is None or r["name"] == wanted) and (type is None or r["type"] == type.upper())
        ]  # fmt: skip

    def add_token(self, token: str, token_id: str) -> None:
        """Accept another API token (its writes are audited under `token_id`)."""
        self.token_ids[token] = token_id

    # handling ---------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth.removeprefix("Bearer ") in self.token_ids

    def _answer(self, request: Request) -> Reply:
        reply = self._route(request)
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and reply.status < 300:
            self._audit(request)
        return reply

    def _audit(self, request: Request) -> None:
        """One Audit Logs v2 entry for a successful Pages or DNS write (the assets API is not audited)."""
        path = request.path.removeprefix(PREFIX)
        if path.startswith("/zones/"):
            product, resource_type = "dns_records", "dns.record"
        elif "/pages/projects" in path:
            product, resource_type = "pages", "pages.deployment" if "/deployments" in path else "pages.project"
        else:
            return
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        action = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}[request.method]
        when = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        with self._lock:
            self.audit_log.append(
                {
                    "id": str(uuid.uuid4()),
                    "account": {"id": ACCOUNT, "name": "stub account"},
                    "action": {"description": f"{request.method} {path}", "result": "success", "time": when, "type": action},
                    "actor": {
                        "id": "stub-user",
                        "context": "api_token",
                        "email": "ci@example.com",
                        "ip_address": "127.0.0.1",
                        "token_id": self.token_ids.get(token, ""),
                        "token_name": f"token {self.token_ids.get(token, '')}",
                        "type": "user",
                    },
                    "raw": {"method": request.method, "status_code": 200, "uri": path},
                    "resource": {"id": path.rstrip("/").rsplit("/", 1)[-1], "product": product, "scope": "accounts", "type": resource_type},
                    "zone": {},
                }
            )

    def _audit_logs(self, request: Request) -> Reply:
        def arg(key: str) -> str:
            return (request.query.get(key) or [""])[0]

        since, before = arg("since"), arg("before")
        if not since or not before:
            return error(400, 10001, "since and before are required")
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
            end = datetime.fromisoformat(before.replace("Z", "+00:00"))
        except ValueError:
            return error(400, 10001, "since and before must be RFC 3339 timestamps or dates")
        limit = int(arg("limit") or 100)
        offset = int(arg("cursor") or 0)
        with self._lock:
            found = [
                e for e in self.audit_log
                if start <= datetime.fromisoformat(e["action"]["time"].replace("Z", "+00:00")) < end
            ]  # fmt: skip
        page = found[offset : offset + limit]
        cursor = str(offset + limit) if offset + limit < len(found) else ""
        return Reply(200, json=envelope(page, result_info={"count": len(page), "cursor": cursor}))

    def _route(self, request: Request) -> Reply:
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
        if path == f"/accounts/{ACCOUNT}/logs/audit" and request.method == "GET":
            return self._audit_logs(request) if self._authorized(request) else error(403, 10000, "Authentication error")
        zone_match = _ZONE_PATH.match(request.path)
        if zone_match:
            if not self._authorized(request):
                return error(403, 10000, "Authentication error")
            with self._lock:
                return self._zone_route(request, zone_match["zone"], zone_match["rest"] or "")
        projects_match = _PROJECTS_PATH.match(request.path)
        if projects_match:
            if not self._authorized(request) or projects_match["acct"] != ACCOUNT:
                return error(403, 10000, "Authentication error")
            with self._lock:
                return self._projects_route(request)
        match = _ACCOUNT_PATH.match(request.path)
        if not match:
            return error(404, 7000, "No route for that URI")
        if not self._authorized(request):
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
        if not self._authorized(request):
            return error(401, 1000, "Invalid API Token")
        if path == "/user":
            return Reply(200, json=envelope({"id": "stub-user", "email": "ci@example.com"}))
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return Reply(200, json=envelope({"id": self.token_ids[token], "status": "active"}))

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
        settings = self.project_settings.get(project, {})
        return {
            "id": hashlib.sha256(project.encode()).hexdigest()[:32],
            "name": project,
            "subdomain": f"{project}.pages.dev",
            "production_branch": self.projects[project],
            "domains": [f"{project}.pages.dev", *sorted(self.domains.get(project, {}))],
            "created_on": settings.get("created_on", "2026-01-01T00:00:00Z"),
            "deployment_configs": settings.get("deployment_configs") or {"production": dict(config), "preview": dict(config)},
            "build_config": settings.get("build_config") or {},
            "canonical_deployment": production_api,
            "latest_deployment": newest.to_api(SUCCESS_STAGE, self.projects[project]) if newest else None,
            "source": settings.get("source"),
            "framework": "",
            "framework_version": "",
            "uses_functions": False,
            "build_image_auto_upgrade": True,
            "preview_script_name": None,
            "production_script_name": None,
        }

    # projects, domains (the provider's) --------------------------------------------------------
    def _projects_route(self, request: Request) -> Reply:
        if request.method == "GET":
            return Reply(200, json=envelope([self._project_api(name) for name in sorted(self.projects)]))
        if request.method != "POST":
            return error(405, 7001, f"Method {request.method} not allowed for this route")
        body = request.json or {}
        name = str(body.get("name") or "")
        if not _PROJECT_NAME.match(name):
            return error(400, 8000011, f"Invalid project name {name!r}: lowercase letters, digits and dashes, at most 58.")
        if name in self.projects:
            return error(409, 8000002, "A project with this name already exists. Choose a different project name.")
        self.projects[name] = str(body.get("production_branch") or "main")
        self.project_settings[name] = {
            "created_on": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            **{k: body[k] for k in ("build_config", "deployment_configs", "source") if body.get(k)},
        }
        self.domains[name] = {}
        return Reply(200, json=envelope(self._project_api(name)))

    def _project_change(self, request: Request, project: str) -> Reply:
        if request.method == "DELETE":
            del self.projects[project]
            self.project_settings.pop(project, None)
            self.domains.pop(project, None)
            for deployment_id in [d.id for d in self.deployments.values() if d.project == project]:
                del self.deployments[deployment_id]
            return Reply(200, json=envelope(None))
        body = request.json or {}
        if body.get("production_branch"):
            self.projects[project] = str(body["production_branch"])
        settings = self.project_settings.setdefault(project, {})
        settings.update({k: body[k] for k in ("build_config", "deployment_configs", "source") if k in body})
        return Reply(200, json=envelope(self._project_api(project)))

    def _domain_route(self, request: Request, project: str, name: str) -> Reply:
        domains = self.domains.setdefault(project, {})
        if not name:
            if request.method == "GET":
                return Reply(200, json=envelope(list(domains.values())))
            if request.method == "POST":
                host = str((request.json or {}).get("name") or "").lower().rstrip(".")
                if not host or "." not in host:
                    return error(400, 8000015, f"Invalid domain name {host!r}.")
                if host in domains or any(host in other for other in self.domains.values()):
                    return error(409, 8000018, "You have already added this custom domain.")
                zone = next((zid for zid, zname in self.zones.items() if host == zname or host.endswith("." + zname)), "")
                now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                domains[host] = {
                    "id": str(uuid.uuid4()),
                    "domain_id": str(uuid.uuid4()),
                    "name": host,
                    "status": "active",
                    "certificate_authority": "google",
                    "zone_tag": zone,
                    "created_on": now,
                    "validation_data": {"status": "active", "method": "http"},
                    "verification_data": {"status": "active"},
                }
                return Reply(200, json=envelope(domains[host]))
        elif name in domains:
            if request.method == "GET":
                return Reply(200, json=envelope(domains[name]))
            if request.method == "DELETE":
                del domains[name]
                return Reply(200, json=envelope(None))
            if request.method == "PATCH":  # "retry validation": nothing to retry here
                return Reply(200, json=envelope(domains[name]))
        else:
            return error(404, 8000018, f"Domain {name} is not a custom domain of project {project}.")
        return error(405, 7001, f"Method {request.method} not allowed for this route")

    # zones, DNS records --------------------------------------------------------------------------
    def _zone_api(self, zone: str) -> dict[str, Any]:
        return {
            "id": zone,
            "name": self.zones[zone],
            "status": "active",
            "paused": False,
            "type": "full",
            "account": {"id": ACCOUNT, "name": "stand-in account"},
            "name_servers": ["ns1.stand-in.invalid", "ns2.stand-in.invalid"],
        }

    def _fqdn(self, zone: str, name: str) -> str:
        zone_name = self.zones[zone]
        name = name.strip().rstrip(".").lower()
        if name in ("@", "", zone_name):
            return zone_name
        return name if name.endswith("." + zone_name) else f"{name}.{zone_name}"

    def _zone_route(self, request: Request, zone: str | None, rest: str) -> Reply:
        if zone is None:
            if request.method != "GET":
                return error(405, 7001, f"Method {request.method} not allowed for this route")
            wanted = request.query.get("name", [None])[0]
            zones = [self._zone_api(z) for z, n in sorted(self.zones.items()) if wanted in (None, n)]
            info = {"page": 1, "per_page": 50, "count": len(zones), "total_count": len(zones), "total_pages": 1}
            return Reply(200, json=envelope(zones, result_info=info))
        if zone not in self.zones:
            return error(404, 7003, f"Could not route to /zones/{zone}{rest}, perhaps your object identifier is invalid?")
        if rest == "" and request.method == "GET":
            return Reply(200, json=envelope(self._zone_api(zone)))
        if rest == "/dns_records":
            if request.method == "GET":
                return self._record_list(request, zone)
            if request.method == "POST":
                return self._record_write(zone, None, request.json or {}, partial=False)
        record_id = rest.removeprefix("/dns_records/")
        if rest.startswith("/dns_records/") and "/" not in record_id:
            record = self.records[zone].get(record_id)
            if record is None:
                return error(404, 81044, "Record does not exist.")
            if request.method == "GET":
                return Reply(200, json=envelope(dict(record)))
            if request.method in ("PUT", "PATCH"):
                return self._record_write(zone, record_id, request.json or {}, partial=request.method == "PATCH")
            if request.method == "DELETE":
                del self.records[zone][record_id]
                return Reply(200, json=envelope({"id": record_id}))
        return error(404, 7000, f"No route for {request.method} /zones/{zone}{rest}")

    def _record_list(self, request: Request, zone: str) -> Reply:
        def arg(key: str) -> str | None:
            return request.query.get(key, [None])[0]

        name = self._fqdn(zone, arg("name")) if arg("name") else None
        items = [
            r for r in self.records[zone].values()
            if (name is None or r["name"] == name)
            and (arg("type") is None or r["type"] == arg("type").upper())
            and (arg("content") is None or r["content"] == arg("content"))
        ]  # fmt: skip
        items.sort(key=lambda r: (r["name"], r["type"], r["created_on"]))
        page = int(arg("page") or 1)
        per_page = int(arg("per_page") or 100)
        chunk = items[(page - 1) * per_page : page * per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": max(1, -(-len(items) // per_page)),
        }
        return Reply(200, json=envelope([dict(r) for r in chunk], result_info=info))

    def _record_write(self, zone: str, record_id: str | None, body: dict[str, Any], *, partial: bool) -> Reply:
        old = self.records[zone].get(record_id) if record_id else None
        base = dict(old) if (old and partial) else {}
        fields = {**base, **{k: v for k, v in body.items() if k in _RECORD_FIELDS}}
        record_type = str(fields.get("type") or "").upper()
        if record_type not in RECORD_TYPES:
            return error(400, 9004, f"DNS record type {record_type or '(none)'!r} is invalid.")
        if not fields.get("name"):
            return error(400, 9005, "DNS record name is required.")
        if fields.get("content") in (None, "") and "data" not in fields:
            return error(400, 9006, "DNS record content is required.")
        ttl = int(fields.get("ttl") if fields.get("ttl") is not None else 1)
        if ttl != 1 and not 30 <= ttl <= 86400:
            return error(400, 9021, "Invalid TTL. Must be between 30 and 86400 seconds, or 1 for Automatic.")
        proxied = bool(fields.get("proxied", False))
        if proxied and record_type not in PROXIABLE:
            return error(400, 9041, f"This record type cannot be proxied: {record_type}.")
        name = self._fqdn(zone, str(fields["name"]))
        content = str(fields.get("content") or "")
        for other in self.records[zone].values():
            if other["id"] == record_id or other["name"] != name:
                continue
            if record_type == "CNAME" or other["type"] == "CNAME":
                return error(400, 81053, "An A, AAAA, or CNAME record with that host already exists.")
            if other["type"] == record_type and other["content"] == content:
                return error(400, 81058, "An identical record already exists.")
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        record = {
            "id": record_id or uuid.uuid4().hex,
            "zone_id": zone,
            "zone_name": self.zones[zone],
            "name": name,
            "type": record_type,
            "content": content,
            "proxiable": record_type in PROXIABLE,
            "proxied": proxied,
            "ttl": ttl,
            "comment": fields.get("comment"),
            "tags": list(fields.get("tags") or []),
            "settings": dict(fields.get("settings") or {}),
            "meta": {},
            "created_on": old["created_on"] if old else now,
            "modified_on": now,
            **({"priority": fields["priority"]} if fields.get("priority") is not None else {}),
            **({"data": fields["data"]} if fields.get("data") is not None else {}),
        }
        self.records[zone][record["id"]] = record
        return Reply(200, json=envelope(dict(record)))

    def _project_route(self, request: Request, project: str, rest: str) -> Reply:
        production_branch = self.projects[project]
        if rest == "" and request.method == "GET":
            return Reply(200, json=envelope(self._project_api(project)))
        if rest == "" and request.method in ("PATCH", "DELETE"):
            return self._project_change(request, project)
        if rest == "/domains" or rest.startswith("/domains/"):
            return self._domain_route(request, project, rest.removeprefix("/domains").strip("/"))
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


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in in the foreground until interrupted."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m sandbox.cloudflare_api", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--token", default=TOKEN, help="the API token it accepts (default: the tests' token)")
    parser.add_argument("--zone", action="append", default=[], metavar="ID=NAME",
                        help=f"a zone it serves (repeatable; default {ZONE}={ZONE_NAME})")  # fmt: skip
    parser.add_argument("--project", action="append", default=[], help="a Pages project that exists from the start")
    args = parser.parse_args(argv)
    zones = dict(item.split("=", 1) for item in args.zone) if args.zone else None
    stub = CloudflareStub(project=None, token=args.token, zones=zones, port=args.port)
    for name in args.project:
        stub.projects[name] = "main"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with stub:
        print(f"CLOUDFLARE_API_BASE_URL={stub.api_base}", flush=True)
        try:
            # A long-lived server keeps only the latest requests (they hold uploaded bodies).
            while not stop.wait(30):
                del stub.requests[:-1000]
        except KeyboardInterrupt:
            pass
    sys.exit(0)


@pytest.fixture
def cloudflare() -> Iterator[CloudflareStub]:
    """A CloudflareStub with project `webstack-site` (production branch `main`) and no deployments."""
    with CloudflareStub() as stub:
        yield stub


if __name__ == "__main__":
    main()
