"""A stack of the real program, run by the real Pulumi CLI against the local cloud.

    stack = LocalStack(root=Path(".sandbox"), name="preview-pr-1", endpoints=ensure_running(root))
    stack.init()                  # file backend, passphrase secrets, the stack's settings
    stack.pulumi("up", "--yes")   # exactly what CI runs, with the local cloud's endpoints

Everything a run writes stays under `root`: the file backend (`state/`), the engine's home, and
the stack's config file (`Pulumi.<stack>.yaml`, passed with `--config-file` so the repository's
own stack files are never touched). The program runs from the repository, as in CI, so its
Commands find `steps/` and the app where they always do; `project_dir` runs it from another copy
of the project instead (a test's throwaway variant), with that copy's `components/` and `steps/`.

The environment is what a CI job's would be, pointed at loopback: AWS (the stand-in provider and
the steps) at moto_server, Cloudflare (the stand-in provider, wrangler and the steps) at the API
stand-in, the steps' DATABASE_URL at the local PostgreSQL, alerts at the local webhook.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess  # runs the pulumi CLI with list argv, no shell  # nosec B404
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
import yaml
from psycopg import sql

from core.names import PAGES_PRODUCTION_BRANCH, PROD_STACK, foundation_names, pages_branch
from core.stack_files import stack_file_values
from sandbox.cloud import Endpoints
from sandbox.engine import BIN_DIR, engine_env

REPO = Path(__file__).resolve().parents[1]
STANDIN_PLUGINS = REPO / "sandbox" / "bin"
VENV = REPO / ".venv"
PAGES_PROJECT = "webstack-site"
PROJECT = "webstack"
DATABASE = "app"
# Commands that read the stack's settings take --config-file (they live under the sandbox, not
# in the repository); the others only take --stack.
_TAKES_CONFIG_FILE = {("up",), ("preview",), ("destroy",), ("refresh",), ("config",)}
_TAKES_STACK = {
    ("cancel",), ("stack", "output"), ("stack", "export"), ("stack", "import"), ("stack", "history"), ("state", "unprotect"),
}


class StackError(Exception):
    """A pulumi command failed; the message names the command and the end of its output."""


@dataclass
class LocalStack:
    root: Path
    name: str
    endpoints: Endpoints
    passphrase: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    project_dir: Path = REPO
    """Where Pulumi.yaml and the program are: the cwd of every pulumi command and the PYTHONPATH."""

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.project_dir = Path(self.project_dir).resolve()
        if not self.passphrase:
            self.passphrase = _passphrase(self.root)

    # --- where things are -------------------------------------------------------------------
    @property
    def backend(self) -> Path:
        return self.root / "state"

    @property
    def config_file(self) -> Path:
        return self.root / f"Pulumi.{self.name}.yaml"

    @property
    def branch(self) -> str:
        return pages_branch(self.name)

    @property
    def database_url(self) -> str:
        """The stack's database on the local PostgreSQL (the sandbox's superuser; trust auth)."""
        return re.sub(r"/[^/]*$", f"/{DATABASE}", self.endpoints.database_url)

    def env(self) -> dict[str, str]:
        env = engine_env(self.backend, self.passphrase, venv=VENV)
        env["PATH"] = os.pathsep.join([str(BIN_DIR), str(STANDIN_PLUGINS), str(VENV / "bin"), env["PATH"]])
        env.update(
            {
                # AWS: the stand-in provider and the steps' boto3 both honour AWS_ENDPOINT_URL.
                "AWS_ENDPOINT_URL": self.endpoints.aws,
                "AWS_ACCESS_KEY_ID": "sandbox",
                "AWS_SECRET_ACCESS_KEY": "sandbox-secret-key",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "WEBSTACK_LAMBDA_URL_BASE": self.endpoints.lambda_base,
                # Cloudflare: the stand-in provider, wrangler and steps.pages.
                "CLOUDFLARE_API_BASE_URL": self.endpoints.cloudflare_api,
                "CLOUDFLARE_API_TOKEN": self.endpoints.cloudflare_token,
                "CLOUDFLARE_ACCOUNT_ID": self.endpoints.cloudflare_account,
                # The steps read the database and the alert webhook from the job's environment.
                "DATABASE_URL": self.database_url,
                "ALERT_WEBHOOK_URL": self.endpoints.webhook,
                "PYTHONPATH": str(self.project_dir),
            }
        )
        env.update(self.extra_env)
        return env

    # --- running pulumi ---------------------------------------------------------------------
    def pulumi(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 1800,
        on_line: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `pulumi ARGS` for this stack; output is streamed to `on_line` when given."""
        argv = self.argv(*args)
        # A session of its own: what the CLI leaves behind is found by it (see end_session).
        proc = subprocess.Popen(  # noqa: S603 - list argv  # nosec B603
            argv, cwd=self.project_dir, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        lines: list[str] = []
        started = time.monotonic()
        assert proc.stdout is not None  # nosec B101 - Popen with PIPE
        try:
            for line in proc.stdout:
                lines.append(line)
                if on_line is not None:
                    on_line(line.rstrip("\n"))
                if time.monotonic() - started > timeout:
                    proc.kill()
        except KeyboardInterrupt:
            # Ctrl-C: pulumi stops cleanly on SIGINT (it finishes what is in flight and writes the
            # state); wait for that rather than leave it running behind the prompt.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            end_session(proc.pid)
            raise
        code = proc.wait()
        end_session(proc.pid)
        output = "".join(lines)
        if check and code != 0:
            tail = "\n".join(output.strip().splitlines()[-25:])
            raise StackError(f"`pulumi {' '.join(args)}` for {self.name} exited with {code}:\n{tail}")
        return subprocess.CompletedProcess(argv, code, output, "")

    def argv(self, *args: str) -> list[str]:
        """The command line `pulumi` runs with (in `project_dir`, with `env()`), for this stack."""
        argv = [str(BIN_DIR / "pulumi"), *args, "--non-interactive"]
        if tuple(args[:1]) in _TAKES_CONFIG_FILE or tuple(args[:2]) in _TAKES_CONFIG_FILE:
            argv += ["--stack", self.name, "--config-file", str(self.config_file)]
        elif tuple(args[:1]) in _TAKES_STACK or tuple(args[:2]) in _TAKES_STACK:
            argv += ["--stack", self.name]
        return argv

    def outputs(self) -> dict[str, Any]:
        result = self.pulumi("stack", "output", "--json", "--show-secrets")
        return json.loads(result.stdout[result.stdout.index("{"):]) if "{" in result.stdout else {}

    # --- setting a stack up -----------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The stack's settings in the local cloud (the rest comes from the stack files)."""
        e = self.endpoints
        return {
            "awsRegion": "us-east-1",
            "awsAccountId": "123456789012",
            "githubRepository": "sandbox/webstack",
            "domain": e.zone_name,
            "cloudflareAccountId": e.cloudflare_account,
            "cloudflareZoneId": e.zone_id,
            "pagesProject": PAGES_PROJECT,
            "siteSubdomain": "www",
            "dbSchema": "app",
            "jwksUrl": e.jwks_url,
            "jwtIssuer": e.jwt_issuer,
            "jwtAudience": e.jwt_audience,
            "dnsResolvers": [e.dns],
            "siteUrl": e.site(PAGES_PROJECT, self.branch),
            "migrationTimeoutSeconds": 120,
        }

    def init(self, **overrides: Any) -> None:
        """Create the stack (if new) on the file backend and write its settings; idempotent.

        A PR stack's config file starts from the template (Pulumi.preview.yaml), which CI passes
        as its `--config-file`, with the local cloud's settings over it: so a value the template
        sets reaches a sandbox PR stack as it reaches a PR stack in CI. (prod keeps the sandbox's
        own settings: Pulumi.prod.yaml's GitHub environments are the workflows' to vouch for.)
        """
        self.backend.mkdir(parents=True, exist_ok=True)
        existing = self.pulumi("stack", "ls", "--json", check=False)
        if f'"name": "{self.name}"' not in existing.stdout:
            self._create()
        template = stack_file_values(self.name, PROJECT, self.project_dir) if self.name != PROD_STACK else {}
        values = {**template, **self.settings(), **overrides}
        plain = {key: value for key, value in values.items() if not isinstance(value, (list, tuple))}
        args = ["config", "set-all", "--path"]
        for key, value in plain.items():
            args += ["--plaintext", f"webstack:{key}={str(value).lower() if isinstance(value, bool) else value}"]
        self.pulumi(*args)
        self._write_lists({key: list(value) for key, value in values.items() if isinstance(value, (list, tuple))})
        if self.name != PROD_STACK:
            # prod reads DATABASE_URL from the environment (env()), as the deploy workflow does; the
            # PR stacks hold it as a config secret, the other way the program takes it.
            self.pulumi("config", "set", "--secret", "webstack:databaseUrl", self.database_url)
        self._ensure_database()
        if self.name != PROD_STACK:
            self._ensure_pages_project()
            self._ensure_artifacts_bucket(values["awsAccountId"])

    def _write_lists(self, lists: dict[str, list[Any]]) -> None:
        """List settings go into the stack's file as YAML lists, whole: `pulumi config set --path
        key[i]` cannot write an empty list, nor drop the items a shorter list no longer has (an app
        switched with `--app` would keep the last one's). The file is the sandbox's own."""
        if not lists:
            return
        document = yaml.safe_load(self.config_file.read_text()) or {}
        config = document.setdefault("config", {}) or {}
        document["config"] = config
        for key, items in lists.items():
            config[f"{PROJECT}:{key}"] = [str(item) for item in items]
        self.config_file.write_text(yaml.safe_dump(document, sort_keys=False))

    def _create(self) -> None:
        """`pulumi stack init` writes the stack's config file (its passphrase salt) beside Pulumi.yaml
        and takes no --config-file: run it in a scratch copy of the project file, then move the file
        under the sandbox, so nothing is written into the repository."""
        scratch = self.root / "init"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        shutil.copy(self.project_dir / "Pulumi.yaml", scratch / "Pulumi.yaml")
        self.pulumi("stack", "init", self.name, "--secrets-provider", "passphrase", "--cwd", str(scratch))
        shutil.move(str(scratch / f"Pulumi.{self.name}.yaml"), self.config_file)
        shutil.rmtree(scratch, ignore_errors=True)

    def _ensure_database(self) -> None:
        with psycopg.connect(self.endpoints.database_url, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def _ensure_pages_project(self) -> None:
        """prod owns the Pages project; a PR stack deploys into it, so it must exist first."""
        e = self.endpoints
        url = f"{e.cloudflare_api}/accounts/{e.cloudflare_account}/pages/projects"
        headers = {"Authorization": f"Bearer {e.cloudflare_token}"}
        if requests.get(f"{url}/{PAGES_PROJECT}", headers=headers, timeout=10).status_code == 404:
            response = requests.post(
                url, headers=headers, json={"name": PAGES_PROJECT, "production_branch": PAGES_PRODUCTION_BRANCH}, timeout=10
            )
            response.raise_for_status()

    def _ensure_artifacts_bucket(self, account_id: str) -> None:
        """prod owns the artifacts bucket (account foundation); a PR stack's builds publish into it,
        so it must exist first: versioned, as prod's creates it (SSE and the rest come with prod)."""
        import boto3

        name = foundation_names(PROJECT, account_id)["artifacts_bucket"]
        s3 = boto3.client(
            "s3", endpoint_url=self.endpoints.aws, region_name="us-east-1",
            aws_access_key_id="sandbox", aws_secret_access_key="sandbox-secret-key",
        )  # fmt: skip
        if name not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=name)
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def session_members(session: int) -> list[int]:
    """The live processes of a session (Linux /proc: the 6th field of stat), its leader excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == session:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


def end_session(session: int, grace: float = 5.0) -> list[int]:
    """Stop what a finished `pulumi` left running in its session; returns their pids.

    The CLI starts its plugins (the language host, providers, the policy pack) each in a process
    group of its own, and a run that fails early leaves one behind: pulumi 3.274.1 stopping at
    "validating stack config" leaves pulumi-language-python running, reparented to init. The group
    of the CLI does not hold them; its session does.
    """
    left = session_members(session)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and session_members(session):
        time.sleep(0.1)
    for pid in session_members(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def _passphrase(root: Path) -> str:
    """The sandbox's own secrets passphrase (a file only this user can read; it protects nothing
    but sandbox state)."""
    path = root / "passphrase"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()

