"""Deploy step: Cloudflare Pages deployments (deploy: critical; delete, delete-branch: non-critical).

    python -m steps.pages deploy --project P --branch B --dir DIR --artifact RECORD --app-dir APP
                                 [--delete-previous] [--timeout S]
    python -m steps.pages delete --project P (--deployment ID | --deployment-from-stdout)
    python -m steps.pages claim-branch --project P --branch B --artifacts-bucket S3 --artifacts-prefix PREFIX
    python -m steps.pages delete-branch --project P --branch B [--claimed --artifacts-bucket S3 --artifacts-prefix PREFIX]

Environment: `CLOUDFLARE_API_TOKEN` (secret, from the CI job only), `CLOUDFLARE_ACCOUNT_ID`,
`CLOUDFLARE_API_BASE_URL` (optional; tests point it at a loopback stand-in). `delete
--deployment-from-stdout` reads the id from `PULUMI_COMMAND_STDOUT`, which pulumi-command sets to
the create's stdout when it runs a `delete`.

deploy deploys the site build's export, and only that: `--artifact` is the build's record (its
stdout, `steps.artifacts`), and `--dir` is used when it holds exactly that export (its tree hash);
otherwise (a new runner, a stale or half-written directory) the export is fetched from the
artifacts bucket, checked against the record, unpacked and deployed. When neither is there, it
fails with one line saying so; it never deploys an empty or a stale directory. It runs the workspace's wrangler (`pages deploy DIR --project-name P --branch B`; `--branch`
always, a PR checkout is a detached HEAD) without a TTY, reads its ND-JSON result file
(`WRANGLER_OUTPUT_FILE_PATH`, record `pages-deploy-detailed`) and then confirms through the API that
the deployment's latest stage is `deploy`/`success`: wrangler exits 0 also when it "couldn't
ascertain the final status". It prints `{"id", "url", "alias", "project", "branch"}`. With
`--delete-previous` (a preview's update: the Command re-ran in place) it then deletes the
deployment its previous run recorded (`PULUMI_COMMAND_STDOUT`), unless that is the production one.

When wrangler fails, the failed API responses in its debug log file (status, Cloudflare error
codes, `Retry-After`) decide: 429, 5xx and codes 8000000/10046 are retried by the runtime with
backoff (honouring `Retry-After`); an unknown project (8000007) or another 4xx fails at once. An
authentication failure (401/403, code 10000) is settled by asking `/user/tokens/verify`: a token
that is not valid fails at once; a valid one makes it the intermittent 10000 Cloudflare is known to
return under load (workers-sdk#13854), which is retried.

delete removes one deployment (`?force=true`: a branch deployment has an alias); a 404 means it is
already gone. delete-branch lists every page of the project's deployments and deletes those whose
`deployment_trigger.metadata.branch` is B. The branch cleanup Command runs it on destroy only: its
create (`claim-branch`) records a claim on the branch under the stack's prefix of the artifacts
bucket and prints it, and `delete-branch --claimed` deletes nothing when a newer claim is there —
a replaced cleanup (create-before-delete: the new one claims first) must not take the live preview
down. Neither ever deletes the project's production
deployment, and delete-branch refuses the production branch: both record a skip with a warning.

Names are checked before anything runs (exit 2, one line): a project is a Pages project name
(lowercase letters, digits, `-`, at most 58), a branch a git-style name that cannot pass for an
option (no leading `-`, no spaces), a deployment id letters, digits and `-` (it is part of an API
path); timeouts are positive finite seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

from core.source_hash import output_hash
from core.versions import WRANGLER_VERSION
from steps import artifacts
from steps.args import StepParser, artifact_prefix, bucket_name, local_path, matching, positive_seconds
from steps.package_manager import npm_tool
from steps.retry import cloudflare_error_codes, http_is_transient, json_body
from steps.runtime import (
    PermanentError,
    ToolResult,
    TransientError,
    check_response,
    log,
    parse_retry_after,
    retry_call,
    run_step,
    run_tool,
    shown,
    warn,
)

DEFAULT_API = "https://api.cloudflare.com/client/v4"
WRANGLER = "node_modules/.bin/wrangler"

PROJECT_NOT_FOUND = 8000007
AUTH_ERROR = 10000
_REQUEST_TIMEOUT = 30.0
_PER_PAGE = 25
_MAX_PAGES = 1000
# Matched whole (`fullmatch`), so no trailing newline slips through.
PROJECT_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,56}[a-z0-9])?")
BRANCH_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+@-]{0,254}")
DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_NETWORK_ERROR = re.compile(r"fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|UND_ERR|socket hang up")


# --- the API ----------------------------------------------------------------------------------


class PagesApi:
    """The few Cloudflare v4 calls the steps make; errors are raised as Transient/PermanentError."""

    def __init__(self, base_url: str, token: str, account_id: str):
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PagesApi:
        env = os.environ if env is None else env
        missing = [n for n in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID") if not env.get(n)]
        if missing:
            raise PermanentError(
                f"{' and '.join(missing)} not set",
                hint="run this in the CI job that has the Cloudflare secret and account id",
            )
        base = env.get("CLOUDFLARE_API_BASE_URL") or DEFAULT_API
        return cls(base, env["CLOUDFLARE_API_TOKEN"], env["CLOUDFLARE_ACCOUNT_ID"])

    def project_path(self, project: str) -> str:
        return f"/accounts/{self.account_id}/pages/projects/{project}"

    def call(self, method: str, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> dict:
        """One request; the envelope on success, else a classified error (see `api_error`)."""
        response = self._session.request(method, self.base_url + path, params=params, timeout=_REQUEST_TIMEOUT)
        try:
            check_response(response, what=what)
        except (TransientError, PermanentError) as exc:
            codes = cloudflare_error_codes(json_body(response))
            error = self.api_error(
                str(exc),
                status=response.status_code,
                codes=codes,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                default=exc,
            )
            error.status, error.codes = response.status_code, codes  # type: ignore[attr-defined]
            raise error from None
        body = json_body(response)
        if not isinstance(body, dict):
            raise TransientError(f"{what}: HTTP {response.status_code} without a JSON body")
        return body

    def token_is_valid(self) -> bool | None:
        """True/False when Cloudflare says whether the token is active, None when it could not tell."""
        verdicts = []
        # User tokens verify under /user, account-owned tokens under the account.
        for path in ("/user/tokens/verify", f"/accounts/{self.account_id}/tokens/verify"):
            try:
                response = self._session.get(self.base_url + path, timeout=_REQUEST_TIMEOUT)
            except requests.RequestException:
                verdicts.append(None)
                continue
            body = json_body(response)
            if response.ok and isinstance(body, dict) and (body.get("result") or {}).get("status") == "active":
                return True
            if response.status_code in (400, 401, 403) or 1000 in cloudflare_error_codes(body):
                verdicts.append(False)
            else:
                verdicts.append(None)
        return False if False in verdicts else None

    def api_error(
        self,
        message: str,
        *,
        status: int,
        codes: Iterable[int],
        retry_after: float | None,
        default: Exception | None = None,
    ) -> Exception:
        """The error a failed Cloudflare response means for the step."""
        codes = set(codes)
        if PROJECT_NOT_FOUND in codes:
            return PermanentError(
                message,
                hint="the Pages project does not exist: create it (the program's PagesProject) or fix the project name",
            )
        if status in (401, 403) or AUTH_ERROR in codes:
            valid = self.token_is_valid()
            if valid is False:
                return PermanentError(
                    f"{message}; Cloudflare says the API token is not valid",
                    hint="replace the CLOUDFLARE_API_TOKEN secret with an active token (Account > Cloudflare Pages > Edit)",
                )
            if valid and AUTH_ERROR in codes:
                return TransientError(
                    f"{message} (the token itself is active: Cloudflare's intermittent auth error)",
                    retry_after=retry_after,
                    hint="the token is active but keeps being refused: check it may edit Pages of this account",
                )
            if valid:
                return PermanentError(
                    message, hint="the token is active but refused: give it Cloudflare Pages edit rights on this account"
                )
        if default is not None:
            return default
        if http_is_transient(status, {"success": False, "errors": [{"code": c} for c in codes]}):
            return TransientError(message, retry_after=retry_after)
        return PermanentError(message)

    def rate_limit_wait(self, project: str) -> float | None:
        """The `Retry-After` of the account's rate limit, asked with one cheap request.

        wrangler does not show response headers; the limit is per token, so when wrangler got a
        429 this request gets it too, with the wait Cloudflare wants.
        """
        try:
            response = self._session.get(self.base_url + self.project_path(project), timeout=_REQUEST_TIMEOUT)
        except requests.RequestException:
            return None
        if response.status_code != 429:
            return None
        return parse_retry_after(response.headers.get("Retry-After"))

    # Pages ------------------------------------------------------------------------------------
    def project(self, project: str) -> dict:
        return self.call("GET", self.project_path(project), what=f"GET Pages project {project}")["result"]

    def deployment(self, project: str, deployment_id: str) -> dict:
        path = f"{self.project_path(project)}/deployments/{deployment_id}"
        return self.call("GET", path, what=f"GET deployment {deployment_id}")["result"]

    def deployments(self, project: str) -> list[dict]:
        """Every deployment of the project, across all pages of the listing (newest first)."""
        found: dict[str, dict] = {}
        page = 1
        while True:
            body = self.call(
                "GET",
                f"{self.project_path(project)}/deployments",
                what=f"list deployments of {project} (page {page})",
                params={"per_page": _PER_PAGE, "page": page},
            )
            items = body.get("result") or []
            for item in items:
                found.setdefault(item["id"], item)
            if not items or page >= _total_pages(body.get("result_info"), len(items)) or page >= _MAX_PAGES:
                break
            page += 1
        log(f"{project}: {len(found)} deployments on {page} page(s)")
        return list(found.values())

    def delete_deployment(self, project: str, deployment_id: str) -> bool:
        """DELETE with force=true (an aliased deployment needs it); False when it was already gone."""
        path = f"{self.project_path(project)}/deployments/{deployment_id}"
        try:
            self.call("DELETE", path, what=f"DELETE deployment {deployment_id}", params={"force": "true"})
        except PermanentError as exc:
            if getattr(exc, "status", None) == 404 and PROJECT_NOT_FOUND not in getattr(exc, "codes", ()):
                log(f"deployment {deployment_id} is already gone")
                return False
            raise
        log(f"deleted deployment {deployment_id}")
        return True

    # Custom domains and DNS records: what workflow.teardown_preview removes of a closed PR by
    # name, where `pulumi destroy` would have taken the ids from the (untrusted) state.
    def _absent_on_404(self, method: str, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> dict | None:
        try:
            return self.call(method, path, what=what, params=params)
        except PermanentError as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def pages_domain(self, project: str, name: str) -> dict | None:
        """The project's custom domain `name`, or None when the project does not have it."""
        body = self._absent_on_404("GET", f"{self.project_path(project)}/domains/{name}", what=f"GET Pages domain {name}")
        return None if body is None else body.get("result") or {}

    def delete_pages_domain(self, project: str, name: str) -> bool:
        """Detach a custom domain; False when it was not attached (already gone)."""
        path = f"{self.project_path(project)}/domains/{name}"
        return self._absent_on_404("DELETE", path, what=f"DELETE Pages domain {name}") is not None

    def dns_records(self, zone_id: str, name: str, record_type: str) -> list[dict]:
        """Every record of exactly this name and type in the zone, across all pages of the listing."""
        found: dict[str, dict] = {}
        page = 1
        while True:
            body = self.call(
                "GET",
                f"/zones/{zone_id}/dns_records",
                what=f"list {record_type} records named {name} (page {page})",
                params={"name": name, "type": record_type, "per_page": 100, "page": page},
            )
            items = body.get("result") or []
            for item in items:
                # Compared again: the listing's `name` filter is the API's to interpret.
                if str(item.get("name", "")).rstrip(".").lower() == name.lower() and item.get("type") == record_type:
                    found.setdefault(item["id"], item)
            if not items or page >= _total_pages(body.get("result_info"), len(items)) or page >= _MAX_PAGES:
                return list(found.values())
            page += 1

    def delete_dns_record(self, zone_id: str, record_id: str) -> bool:
        """DELETE one record; False when it was already gone."""
        path = f"/zones/{zone_id}/dns_records/{record_id}"
        return self._absent_on_404("DELETE", path, what=f"DELETE DNS record {record_id}") is not None


def _total_pages(info: Any, count: int) -> int:
    if isinstance(info, dict):
        if isinstance(info.get("total_pages"), int):
            return info["total_pages"]
        if isinstance(info.get("total_count"), int) and info.get("per_page"):
            return math.ceil(info["total_count"] / info["per_page"])
    # No paging info: keep going while pages come back full.
    return 1_000_000 if count >= _PER_PAGE else 0


def branch_of(deployment: Mapping[str, Any]) -> str | None:
    return ((deployment.get("deployment_trigger") or {}).get("metadata") or {}).get("branch")


def production_ids(project: Mapping[str, Any]) -> set[str]:
    """The deployment ids serving production: never deleted by these steps."""
    ids = set()
    canonical = project.get("canonical_deployment") or {}
    if canonical.get("id"):
        ids.add(canonical["id"])
    latest = project.get("latest_deployment") or {}
    if latest.get("id") and (
        latest.get("environment") == "production" or branch_of(latest) == project.get("production_branch")
    ):
        ids.add(latest["id"])
    return ids


# --- wrangler's failures -------------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESPONSE_STATUS = re.compile(r"-- START CF API RESPONSE: .*? (?P<status>\d{3})\s*$", re.MULTILINE)
_ERROR_CODE = re.compile(r"\[code: (?P<code>\d+)\]")


def response_statuses(output: str) -> list[int]:
    """The HTTP status of every API response, in order, from wrangler's debug output."""
    return [int(m["status"]) for m in _RESPONSE_STATUS.finditer(_ANSI.sub("", output))]


def error_codes(output: str, records: list[dict]) -> list[int]:
    """The Cloudflare error codes wrangler reported (`[code: N]` notes, the command-failed record)."""
    codes = [int(m["code"]) for m in _ERROR_CODE.finditer(_ANSI.sub("", output))]
    failed = next((r for r in reversed(records) if r.get("type") == "command-failed"), {})
    if isinstance(failed.get("code"), int):
        codes.append(failed["code"])
    return list(dict.fromkeys(codes))


def read_records(path: Path) -> list[dict]:
    """The ND-JSON records wrangler wrote to WRANGLER_OUTPUT_FILE_PATH (none if it wrote none)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def wrangler_error(result: ToolResult, records: list[dict], api: PagesApi, project: str) -> Exception:
    """What a failed `wrangler pages deploy` means: transient (retry) or permanent (fail now)."""
    failed_record = next((r for r in reversed(records) if r.get("type") == "command-failed"), {})
    summary = failed_record.get("message") or _last_error_line(result.output) or f"exit code {result.returncode}"
    statuses = [s for s in response_statuses(result.output) if not 200 <= s < 300]
    codes = error_codes(result.output, records)
    message = f"wrangler pages deploy failed: {summary}"
    if statuses or codes:
        message += f" (HTTP {', '.join(map(str, statuses)) or '2xx'}; Cloudflare codes {', '.join(map(str, codes)) or 'none'})"
    if not statuses and not codes:
        if _NETWORK_ERROR.search(result.output):
            return TransientError(message)
        return PermanentError(message, hint="see wrangler's output above")
    auth = [s for s in statuses if s in (401, 403)]
    # wrangler ends at the failure it cannot handle; earlier ones it retried and got past.
    status = auth[0] if auth and PROJECT_NOT_FOUND not in codes else (statuses[-1] if statuses else 200)
    retry_after = api.rate_limit_wait(project) if status == 429 else None
    return api.api_error(message, status=status, codes=codes, retry_after=retry_after)


def _last_error_line(output: str) -> str:
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    errors = [line for line in lines if "[ERROR]" in line]
    return errors[-1].split("[ERROR]", 1)[1].strip() if errors else ""


# --- deploy --------------------------------------------------------------------------------------


def wrangler_env(tmp: Path) -> dict[str, str]:
    return {
        "WRANGLER_OUTPUT_FILE_PATH": str(tmp / "wrangler-output.ndjson"),
        # Debug output names the HTTP status of every API response, which classifies a failure
        # (sanitized: no bodies, no headers). Its log *file* is no use: wrangler exits before the
        # last entries, the failing response among them, are written.
        "WRANGLER_LOG": "debug",
        "WRANGLER_LOG_PATH": str(tmp / "wrangler-debug.log"),
        "WRANGLER_SEND_METRICS": "false",
        # No banner: it checks the npm registry for a newer wrangler on every run.
        "WRANGLER_HIDE_BANNER": "true",
        "CI": "true",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }


def run_wrangler(api: PagesApi, *, wrangler: Path, site: Path, project: str, branch: str, timeout: float) -> dict:
    """One `wrangler pages deploy`; its pages-deploy-detailed record, or a classified error."""
    with tempfile.TemporaryDirectory(prefix="pages-deploy-") as raw_tmp:
        tmp = Path(raw_tmp)
        argv = [str(wrangler), "pages", "deploy", str(site), "--project-name", project, "--branch", branch]
        if os.environ.get("GITHUB_SHA"):
            argv += ["--commit-hash", os.environ["GITHUB_SHA"]]
        env = {**wrangler_env(tmp), "CLOUDFLARE_ACCOUNT_ID": api.account_id, "CLOUDFLARE_API_BASE_URL": api.base_url}
        # cwd is an empty directory: no wrangler.toml or functions/ of the repo is picked up.
        result = run_tool(argv, cwd=tmp, env=env, timeout=timeout, what="wrangler pages deploy")
        records = read_records(tmp / "wrangler-output.ndjson")
        if not result.ok:
            raise wrangler_error(result, records, api, project)
    detailed = next((r for r in reversed(records) if r.get("type") == "pages-deploy-detailed"), None)
    if detailed is None:
        detailed = next((r for r in reversed(records) if r.get("type") == "pages-deploy"), {})
    return detailed


def find_new_deployment(api: PagesApi, project: str, branch: str, since: dt.datetime) -> dict:
    """The newest deployment of `branch` created since `since`: for a run that recorded no id."""
    body = api.call(
        "GET",
        f"{api.project_path(project)}/deployments",
        what=f"list deployments of {project}",
        params={"per_page": _PER_PAGE, "page": 1},
    )
    for item in body.get("result") or []:
        created = _parse_time(item.get("created_on"))
        if branch_of(item) == branch and created is not None and created >= since:
            return item
    raise TransientError(f"wrangler exited 0 but no deployment of {branch} was recorded or listed since {since:%H:%M:%S}")


def _parse_time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _stage(deployment: Mapping[str, Any]) -> tuple[str, str]:
    stage = deployment.get("latest_stage") or {}
    return str(stage.get("name")), str(stage.get("status"))


def confirm_deployment(api: PagesApi, project: str, deployment_id: str, *, deadline: float) -> dict:
    """Poll the deployment until its latest stage is final; return it when `deploy` succeeded."""

    def poll() -> dict:
        deployment = api.deployment(project, deployment_id)
        name, status = _stage(deployment)
        if (name, status) == ("deploy", "success") or status in ("failure", "canceled"):
            return deployment
        raise TransientError(f"deployment {deployment_id} is at stage {name} ({status})")

    try:
        deployment = retry_call(
            poll, what=f"confirm deployment {deployment_id}", attempts=20, deadline=deadline, initial_wait=1.0, max_wait=15.0
        )
    except TransientError as exc:
        raise PermanentError(
            f"could not confirm deployment {deployment_id}: {exc}",
            hint=f"check deployment {deployment_id} of {project} in the Cloudflare dashboard, then re-run the deploy",
        ) from None
    name, status = _stage(deployment)
    if status != "success":
        # A failed or cancelled static deployment is Cloudflare's side: a new deploy may well work.
        raise TransientError(f"deployment {deployment_id} ended at stage {name} ({status})")
    return deployment


def site_to_deploy(directory: Path, artifact: artifacts.Artifact, scratch: Path) -> Path:
    """The build's export: `directory` when it holds exactly that tree, else the copy in the
    artifacts bucket, checked and unpacked under `scratch`. Never an empty or another tree."""
    if (directory / "index.html").is_file():
        here = output_hash(directory)
        if here == artifact.sha256:
            log(f"pages: {shown(directory, quote=False)} holds the build's export (sha256 {artifact.sha256})")
            return directory.resolve()
        why = f"holds another export (sha256 {here})"
    elif directory.exists():
        why = "has no index.html"
    else:
        why = "does not exist"
    log(f"pages: {shown(directory, quote=False)} {why}; fetching the build's export from {artifact.where}")
    try:
        data = artifacts.fetch(artifact)
    except PermanentError as exc:
        raise PermanentError(
            f"the site export {artifact.sha256[:12]} is not on this runner ({shown(directory, quote=False)} {why}) "
            f"and cannot be fetched: {exc}",
            hint=getattr(exc, "hint", None) or "rebuild the site: `pulumi up --replace` on its site-build Command",
        ) from None
    site = scratch / "site"
    artifacts.extract_tarball(data, site)
    fetched = output_hash(site)
    if fetched != artifact.sha256 or not (site / "index.html").is_file():
        raise PermanentError(
            f"the export fetched from {artifact.where} is not the build's (sha256 {fetched}, recorded {artifact.sha256})",
            hint="nothing was deployed; rebuild the site: `pulumi up --replace` on its site-build Command",
        )
    return site


def deploy(args: argparse.Namespace) -> dict:
    api = PagesApi.from_env()
    artifact = artifacts.parse_artifact(args.artifact)
    with tempfile.TemporaryDirectory(prefix="pages-site-") as scratch:
        return _deploy(args, api, site_to_deploy(Path(args.dir), artifact, Path(scratch)))


def delete_previous(api: PagesApi, project: str, current: str, previous_stdout: str | None) -> None:
    """After an in-place redeploy of a preview: the deployment the previous run recorded goes
    (best effort: the branch cleanup on destroy removes any that stays)."""
    if not previous_stdout:
        return
    try:
        previous = deployment_id_from_stdout(previous_stdout)
        if previous == current:
            return
        if previous in production_ids(api.project(project)):
            warn(f"pages: the previous deployment {previous} is {project}'s production deployment; kept")
            return
        api.delete_deployment(project, previous)
    except (PermanentError, TransientError) as exc:
        warn(f"pages: the previous deployment was not deleted ({exc}); the branch cleanup removes it on destroy")


def _deploy(args: argparse.Namespace, api: PagesApi, site: Path) -> dict:
    if not (Path(args.app_dir) / "package.json").is_file():
        raise PermanentError(
            f"--app-dir {shown(args.app_dir, quote=False)} has no package.json",
            hint="pass the app's workspace root (the stack's `appDir`)",
        )
    wrangler = (Path(args.app_dir) / WRANGLER).resolve()
    if not wrangler.exists():
        # The app's own wrangler when it has one (its lockfile pins it); else the pipeline's.
        wrangler = Path(npm_tool("wrangler", WRANGLER_VERSION))
        log(f"pages: {shown(args.app_dir, quote=False)} has no wrangler of its own; using wrangler {WRANGLER_VERSION} ({wrangler})")
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)  # clock skew allowance
    record = run_wrangler(api, wrangler=wrangler, site=site, project=args.project, branch=args.branch, timeout=args.timeout)
    deployment_id = record.get("deployment_id")
    if not deployment_id:
        warn("wrangler exited 0 without a deployment record; looking the deployment up through the API")
        deployment_id = find_new_deployment(api, args.project, args.branch, started)["id"]
    deployment = confirm_deployment(api, args.project, deployment_id, deadline=args.confirm_timeout)
    aliases = [a for a in deployment.get("aliases") or [] if a.endswith(".pages.dev")]
    if args.delete_previous:
        delete_previous(api, args.project, deployment_id, os.environ.get("PULUMI_COMMAND_STDOUT"))
    return {
        "id": deployment_id,
        "url": record.get("url") or deployment.get("url"),
        "alias": record.get("alias") or (aliases[0] if aliases else None),
        "project": args.project,
        "branch": args.branch,
    }


# --- delete ------------------------------------------------------------------------------------


def deployment_id_from_stdout(stdout: str | None) -> str:
    """The id in the deploy Command's stdout (`{"id": ...}` on one line), as pulumi-command hands it."""
    for line in reversed((stdout or "").splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
            if not DEPLOYMENT_ID.fullmatch(value["id"]):
                raise PermanentError(
                    f"PULUMI_COMMAND_STDOUT holds a deployment id that is not one: {shown(value['id'])}",
                    hint="nothing was deleted; remove a leftover deployment with delete-branch or the dashboard",
                )
            return value["id"]
    raise PermanentError(
        "PULUMI_COMMAND_STDOUT holds no deployment id",
        hint="nothing recorded to delete; remove a leftover deployment with delete-branch or the dashboard",
    )


def delete(args: argparse.Namespace) -> dict:
    deployment_id = args.deployment or deployment_id_from_stdout(os.environ.get("PULUMI_COMMAND_STDOUT"))
    api = PagesApi.from_env()
    project = api.project(args.project)
    if deployment_id in production_ids(project):
        raise PermanentError(
            f"refusing to delete deployment {deployment_id}: it is {args.project}'s production deployment",
            hint="production deployments are kept (instant rollback); nothing was deleted",
        )
    deleted = api.delete_deployment(args.project, deployment_id)
    return {"project": args.project, "deployment": deployment_id, "deleted": deleted}


def branch_claim_name(branch: str) -> str:
    return "pages-branch-" + re.sub(r"[^A-Za-z0-9._-]", "_", branch)


def _own_claim() -> str | None:
    try:
        value = json.loads((os.environ.get("PULUMI_COMMAND_STDOUT") or "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    claim = value.get("claim") if isinstance(value, dict) else None
    return claim if isinstance(claim, str) and claim else None


def claim_branch(args: argparse.Namespace) -> dict:
    """The branch cleanup's create (and update): claim the branch for this resource. An update keeps
    the claim its create printed; a new resource (a replacement's) takes a new one."""
    claim = _own_claim() or secrets.token_hex(16)
    artifacts.put_claim(
        bucket=args.artifacts_bucket, prefix=args.artifacts_prefix, name=branch_claim_name(args.branch), claim=claim
    )
    return {"claim": claim, "project": args.project, "branch": args.branch}


def delete_branch(args: argparse.Namespace) -> dict:
    api = PagesApi.from_env()
    if args.claimed:
        own = _own_claim()
        current = artifacts.current_claim(
            bucket=args.artifacts_bucket, prefix=args.artifacts_prefix, name=branch_claim_name(args.branch)
        )
        if current is not None and current != own:
            log(
                f"branch {args.branch} is claimed by a newer cleanup ({current}): this one was replaced, "
                "and the live preview stays; nothing deleted"
            )
            return {"project": args.project, "branch": args.branch, "deleted": [], "claimed_by": current}
    project = api.project(args.project)
    if args.branch == project.get("production_branch"):
        raise PermanentError(
            f"refusing to delete the deployments of {args.branch}: it is {args.project}'s production branch",
            hint="delete-branch is for preview branches; nothing was deleted",
        )
    keep = production_ids(project)
    mine = [d for d in api.deployments(args.project) if branch_of(d) == args.branch and d["id"] not in keep]
    log(f"{len(mine)} deployment(s) of branch {args.branch} to delete")
    deleted = [d["id"] for d in mine if api.delete_deployment(args.project, d["id"])]
    return {"project": args.project, "branch": args.branch, "deleted": deleted}


# --- CLI ---------------------------------------------------------------------------------------


_project_arg = matching(PROJECT_NAME, "a Pages project name (a-z, 0-9, '-', at most 58)")
_branch_arg = matching(BRANCH_NAME, "a branch name (letters, digits, . _ / + @ -, not starting with '-')")
_deployment_arg = matching(DEPLOYMENT_ID, "a deployment id (letters, digits, '-')")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StepParser(prog="python -m steps.pages", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("deploy", help="wrangler pages deploy, confirmed through the API")
    p.add_argument("--project", required=True, type=_project_arg)
    p.add_argument("--branch", required=True, type=_branch_arg)
    p.add_argument("--dir", required=True, type=local_path, help="the built site (steps.build_site --out)")
    p.add_argument("--artifact", required=True, help="the site build's record (its stdout): what to deploy")
    p.add_argument(
        "--delete-previous", action="store_true", help="then delete the deployment PULUMI_COMMAND_STDOUT names (previews)"
    )
    p.add_argument("--app-dir", required=True, type=local_path, help="the npm workspace whose wrangler runs (the stack's appDir)")
    p.add_argument("--timeout", type=positive_seconds, default=600.0, help="seconds one wrangler run may take")
    p.add_argument("--confirm-timeout", type=positive_seconds, default=180.0, help="seconds to wait for the deploy stage")

    p = commands.add_parser("delete", help="delete one deployment (force=true)")
    p.add_argument("--project", required=True, type=_project_arg)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--deployment", type=_deployment_arg, help="deployment id")
    which.add_argument(
        "--deployment-from-stdout", action="store_true", help="read the id from PULUMI_COMMAND_STDOUT (the deploy's output)"
    )

    p = commands.add_parser("claim-branch", help="claim a preview branch for the cleanup that deletes it on destroy")
    p.add_argument("--project", required=True, type=_project_arg)
    p.add_argument("--branch", required=True, type=_branch_arg)
    p.add_argument("--artifacts-bucket", required=True, type=bucket_name)
    p.add_argument("--artifacts-prefix", required=True, type=artifact_prefix)

    p = commands.add_parser("delete-branch", help="delete every deployment of a preview branch")
    p.add_argument("--project", required=True, type=_project_arg)
    p.add_argument("--branch", required=True, type=_branch_arg)
    p.add_argument("--claimed", action="store_true", help="only while no newer claim-branch owns the branch")
    p.add_argument("--artifacts-bucket", type=bucket_name)
    p.add_argument("--artifacts-prefix", type=artifact_prefix)
    args = parser.parse_args(argv)
    if args.command == "delete-branch" and args.claimed and not (args.artifacts_bucket and args.artifacts_prefix):
        parser.error("delete-branch --claimed needs --artifacts-bucket and --artifacts-prefix (where the claim is)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "deploy":
        return run_step(
            "pages-deploy",
            critical=True,
            body=lambda: deploy(args),
            attempts=5,
            deadline=1800.0,
            initial_wait=2.0,
            max_wait=60.0,
        )
    if args.command == "delete":
        return run_step("pages-delete", critical=False, body=lambda: delete(args), deadline=300.0)
    if args.command == "claim-branch":
        return run_step("pages-claim-branch", critical=True, body=lambda: claim_branch(args), deadline=300.0)
    return run_step("pages-delete-branch", critical=False, body=lambda: delete_branch(args), deadline=600.0)


if __name__ == "__main__":
    sys.exit(main())
