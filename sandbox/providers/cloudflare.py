"""`pulumi-resource-cloudflare` stand-in (reports version 6.23.1), backed by the Cloudflare API stand-in.

Run by the engine as an ambient plugin (`sandbox/bin/pulumi-resource-cloudflare` on PATH). It
speaks the Cloudflare v4 API over HTTP to `sandbox/cloudflare_api.py` (or anything that answers
the same routes), so `wrangler pages deploy` then deploys into the project it created and DNS
records live where the checks (and a loopback DNS server) read them.

Pointing it at the API:
  * base URL: the provider config `baseUrl`, else env `CLOUDFLARE_API_BASE_URL` (what wrangler
    reads too), else env `CLOUDFLARE_BASE_URL`; e.g. `http://127.0.0.1:PORT/client/v4`. Without
    one it refuses to run, so it never reaches the real Cloudflare.
  * token: the provider config `apiToken`, else env `CLOUDFLARE_API_TOKEN` (sent as Bearer).

Covered types (all kept in the API stand-in; none lives only in the provider):
  cloudflare:index/pagesProject:PagesProject   POST/PATCH/GET/DELETE /accounts/:a/pages/projects[/:name]
  cloudflare:index/pagesDomain:PagesDomain     POST/GET/DELETE .../projects/:p/domains[/:name]
  cloudflare:index/dnsRecord:DnsRecord         POST/PUT/GET/DELETE /zones/:z/dns_records[/:id]
  Function: cloudflare:index/getZone:getZone   GET /zones/:id, or /zones?name= for `filter.name`.

Replace-on-change properties (`REPLACE_ON_CHANGE` below is the source; a test keeps this table
equal to it; a PagesDomain has no update at all):
  cloudflare:index/pagesProject:PagesProject: accountId, name
  cloudflare:index/pagesDomain:PagesDomain: accountId, name, projectName
  cloudflare:index/dnsRecord:DnsRecord: type, zoneId

Outputs: PagesProject `subdomain`, `domains`, `createdOn`, `framework`, `frameworkVersion`,
`usesFunctions`, `previewScriptName`, `productionScriptName` (the
deployment objects `canonicalDeployment`/`latestDeployment` are left out: they change with every
wrangler deploy and are not read). PagesDomain `status`, `domainId`, `zoneTag`, `createdOn`,
`certificateAuthority`, `validationData`, `verificationData`. DnsRecord `proxiable`, `createdOn`,
`modifiedOn`, `meta` (a JSON string, as the SDK types it); its `name` is what the API stores
(fully qualified). Read returns what the
API holds now; 404 means gone (refresh drops it, delete succeeds).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, ClassVar

import grpc
from pulumi.provider.experimental.property_value import PropertyValue

from sandbox.providers.base import (
    Ctx,
    NotFound,
    ProviderError,
    ResourceType,
    StandInProvider,
    compact,
    config_value,
    serve,
)

VERSION = "6.23.1"

REPLACE_ON_CHANGE: dict[str, frozenset[str]] = {
    "cloudflare:index/pagesProject:PagesProject": frozenset({"accountId", "name"}),
    "cloudflare:index/pagesDomain:PagesDomain": frozenset({"accountId", "projectName", "name"}),
    # terraform-provider-cloudflare v5 internal/services/dns_record/schema.go: zone_id and type
    # RequiresReplace (from v5.0.0 on). pulumi-cloudflare sets no auto-naming, so a replacement is
    # create-before-delete.
    "cloudflare:index/dnsRecord:DnsRecord": frozenset({"zoneId", "type"}),
}
"""Type token -> the properties whose change replaces the resource."""

RETRY_STATUSES = {429, 500, 502, 503, 504}


class ApiError(ProviderError):
    def __init__(self, method: str, path: str, status: int, errors: list[dict[str, Any]]):
        detail = "; ".join(f"code {e.get('code')}: {e.get('message')}" for e in errors) or "no error detail"
        super().__init__(f"Cloudflare API {method} {path}: HTTP {status}: {detail}")
        self.status = status
        self.codes = {e.get("code") for e in errors}


class CloudflareProvider(StandInProvider):
    package = "cloudflare"
    version = VERSION

    def __init__(self) -> None:
        super().__init__(
            [PagesProject(), PagesDomain(), DnsRecord()],
            invokes={"cloudflare:index/getZone:getZone": self._get_zone},
        )
        self.base_url: str | None = None
        self.token: str | None = None

    def configure_from(self, args: Mapping[str, PropertyValue], variables: Mapping[str, str]) -> None:
        def get(key: str) -> Any:
            return config_value(args, variables, "cloudflare", key)

        self.base_url = (
            get("baseUrl") or os.environ.get("CLOUDFLARE_API_BASE_URL") or os.environ.get("CLOUDFLARE_BASE_URL")
        )
        self.token = get("apiToken") or os.environ.get("CLOUDFLARE_API_TOKEN")

    # HTTP ---------------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        """One v4 API call; returns `result`. 404 raises NotFound; other failures ApiError."""
        if not self.base_url:
            raise ProviderError(
                "cloudflare stand-in: no API base URL: set CLOUDFLARE_API_BASE_URL (the Cloudflare API "
                "stand-in) or the provider's `baseUrl`; it never talks to the real Cloudflare",
                grpc.StatusCode.FAILED_PRECONDITION,
            )
        if not self.token:
            raise ProviderError("cloudflare stand-in: no API token: set CLOUDFLARE_API_TOKEN or the provider's `apiToken`")
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(5):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310 - configured API URL
                    payload = json.loads(response.read() or b"null")
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
                try:
                    payload = json.loads(exc.read() or b"null")
                except ValueError:
                    payload = None
            except urllib.error.URLError as exc:
                raise ProviderError(f"Cloudflare API {method} {path}: cannot connect to {self.base_url}: {exc.reason}") from exc
            if status in RETRY_STATUSES and attempt < 4:
                time.sleep(0.5 * 2**attempt)
                continue
            break
        payload = payload if isinstance(payload, dict) else {}
        if 200 <= status < 300 and payload.get("success", True):
            return payload.get("result")
        errors = payload.get("errors") or []
        if status == 404:
            raise NotFound(f"Cloudflare API {method} {path}: not found")
        raise ApiError(method, path, status, errors)

    # functions ----------------------------------------------------------------------------------
    def _get_zone(self, args: dict[str, Any]) -> dict[str, Any]:
        zone_id = args.get("zoneId")
        if zone_id:
            zone = self.call("GET", f"/zones/{zone_id}")
        else:
            name = (args.get("filter") or {}).get("name") or args.get("name")
            zones = self.call("GET", "/zones", query={"name": name}) or []
            if len(zones) != 1:
                raise ProviderError(f"getZone: {len(zones)} zones named {name!r}")
            zone = zones[0]
        return {
            "id": zone["id"],
            "zoneId": zone["id"],
            "name": zone["name"],
            "status": zone.get("status"),
            "paused": zone.get("paused", False),
            "type": zone.get("type"),
            "account": zone.get("account"),
            "nameServers": zone.get("name_servers", []),
        }


class CloudflareType(ResourceType):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "pulumi_type" in cls.__dict__:
            cls.replace_on_change = REPLACE_ON_CHANGE[cls.pulumi_type]

    @staticmethod
    def api(ctx: Ctx) -> CloudflareProvider:
        return ctx.provider


def _project_path(account: str, name: str = "") -> str:
    return f"/accounts/{account}/pages/projects" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")


def _snake(value: Any) -> Any:
    """camelCase keys (Pulumi) -> snake_case (the API), deeply."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
            out[snake] = _snake(item)
        return out
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


class PagesProject(CloudflareType):
    pulumi_type = "cloudflare:index/pagesProject:PagesProject"
    required = ("accountId", "name", "productionBranch")
    computed = frozenset(
        {
            "id", "subdomain", "domains", "createdOn", "framework", "frameworkVersion", "usesFunctions",
            "previewScriptName", "productionScriptName",
        }
    )  # fmt: skip

    @staticmethod
    def _computed(project: dict[str, Any]) -> dict[str, Any]:
        return {
            "subdomain": project.get("subdomain"),
            "domains": project.get("domains", []),
            "createdOn": project.get("created_on"),
            "framework": project.get("framework", ""),
            "frameworkVersion": project.get("framework_version", ""),
            "usesFunctions": project.get("uses_functions", False),
            "previewScriptName": project.get("preview_script_name"),
            "productionScriptName": project.get("production_script_name"),
        }

    @staticmethod
    def _body(inputs: dict[str, Any]) -> dict[str, Any]:
        return compact(
            name=inputs.get("name"),
            production_branch=inputs.get("productionBranch"),
            build_config=_snake(inputs.get("buildConfig")),
            deployment_configs=_snake(inputs.get("deploymentConfigs")),
            source=_snake(inputs.get("source")),
        )

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        project = self.api(ctx).call("POST", _project_path(inputs["accountId"]), self._body(inputs))
        return project["name"], self._computed(project)

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        body = {k: v for k, v in self._body(news).items() if k != "name"}
        project = self.api(ctx).call("PATCH", _project_path(news["accountId"], rid), body)
        return self._computed(project)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            project = self.api(ctx).call("GET", _project_path(state["accountId"], rid))
        except NotFound:
            return None
        return {**state, "name": project["name"], "productionBranch": project.get("production_branch"), **self._computed(project)}

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        try:
            self.api(ctx).call("DELETE", _project_path(state["accountId"], rid))
        except NotFound:
            pass


class PagesDomain(CloudflareType):
    pulumi_type = "cloudflare:index/pagesDomain:PagesDomain"
    required = ("accountId", "projectName", "name")
    computed = frozenset(
        {"id", "status", "domainId", "zoneTag", "createdOn", "certificateAuthority", "validationData", "verificationData"}
    )

    @staticmethod
    def _path(state: dict[str, Any], name: str = "") -> str:
        path = _project_path(state["accountId"], state["projectName"]) + "/domains"
        return path + (f"/{urllib.parse.quote(name, safe='')}" if name else "")

    @staticmethod
    def _computed(domain: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": domain.get("status"),
            "domainId": domain.get("domain_id"),
            "zoneTag": domain.get("zone_tag"),
            "createdOn": domain.get("created_on"),
            "certificateAuthority": domain.get("certificate_authority"),
            "validationData": domain.get("validation_data") or {},
            "verificationData": domain.get("verification_data") or {},
        }

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        domain = self.api(ctx).call("POST", self._path(inputs), {"name": inputs["name"]})
        return domain["name"], self._computed(domain)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            domain = self.api(ctx).call("GET", self._path(state, rid))
        except NotFound:
            return None
        return {**state, "name": domain["name"], **self._computed(domain)}

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        try:
            self.api(ctx).call("DELETE", self._path(state, rid))
        except NotFound:
            pass


class DnsRecord(CloudflareType):
    pulumi_type = "cloudflare:index/dnsRecord:DnsRecord"
    required = ("zoneId", "name", "type", "ttl")
    computed = frozenset({"id", "proxiable", "createdOn", "modifiedOn", "meta", "commentModifiedOn", "tagsModifiedOn"})
    FIELDS: ClassVar[dict[str, str]] = {
        "name": "name", "type": "type", "content": "content", "ttl": "ttl", "proxied": "proxied",
        "comment": "comment", "tags": "tags", "priority": "priority",
    }  # fmt: skip

    def _body(self, inputs: dict[str, Any]) -> dict[str, Any]:
        body = {api: inputs[key] for key, api in self.FIELDS.items() if inputs.get(key) is not None}
        if "ttl" in body:
            body["ttl"] = int(body["ttl"])
        if inputs.get("settings"):
            body["settings"] = _snake(inputs["settings"])
        if inputs.get("data"):
            body["data"] = _snake(inputs["data"])
        return body

    @staticmethod
    def _computed(record: dict[str, Any]) -> dict[str, Any]:
        return {
            "proxiable": record.get("proxiable", False),
            "createdOn": record.get("created_on"),
            "modifiedOn": record.get("modified_on"),
            # The SDK types `meta` as a string: the API's object, JSON-encoded.
            "meta": json.dumps(record.get("meta") or {}, sort_keys=True),
        }

    @staticmethod
    def _path(zone: str, rid: str = "") -> str:
        return f"/zones/{zone}/dns_records" + (f"/{rid}" if rid else "")

    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        record = self.api(ctx).call("POST", self._path(inputs["zoneId"]), self._body(inputs))
        return record["id"], self._computed(record)

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        record = self.api(ctx).call("PUT", self._path(news["zoneId"], rid), self._body(news))
        return self._computed(record)

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        try:
            record = self.api(ctx).call("GET", self._path(state["zoneId"], rid))
        except NotFound:
            return None
        current = {**state, **self._computed(record)}
        for key, api in self.FIELDS.items():
            if api in record and (record[api] is not None or state.get(key) is not None):
                current[key] = record[api]
        if current.get("tags") == [] and state.get("tags") is None:
            current["tags"] = None
        return current

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        try:
            self.api(ctx).call("DELETE", self._path(state["zoneId"], rid))
        except NotFound:
            pass


def main() -> None:
    serve(CloudflareProvider())


if __name__ == "__main__":
    main()
    sys.exit(0)
