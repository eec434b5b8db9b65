"""The sweeper's teardown against a planted state, on the real engine and the local cloud (engine tier).

A PR stack (`preview-pr-41`) is deployed by the real `pulumi up` into the local cloud (moto, the
Cloudflare stand-in, PostgreSQL; sandbox.stack.LocalStack). Its stored state is then replaced by a
planted one, as any PR holding the preview role could write it for a closed PR number: every plugin
identity field the engine reads (`__internal.name` -> a plugin of the author's, `pluginDownloadURL`
-> a loopback server, another `version`, a `parameterization`) and a Command `delete` that writes a
marker. Then:

- the sweeper's step (its `run` from sweeper.yml, under the lease) removes everything of PR 41, read
  back from moto, PostgreSQL's catalog, the Cloudflare stand-in and the backend, and nothing the
  state named ran: no marker file, no request to the download server;
- the counterfactual: `pulumi destroy` of that planted state (what the sweeper ran before) runs what
  the state names, so the same check finds evidence: the test above would fail on it;
- verify_state (cleanup's guard) passes the real engine's genuine export and refuses the planted one,
  naming each field.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml

from core.names import foundation_names
from sandbox.cloud import Endpoints, ensure_running, stop
from sandbox.engine import BIN_DIR
from sandbox.http_server import Reply, StubServer
from sandbox.stack import PAGES_PROJECT, REPO, LocalStack
from tests.test_real_engine import Cloud, copy_app
from workflow.verify_state import declaration_of, recording_for, verify

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not (BIN_DIR / "pulumi").exists(), reason="bin/pulumi not built (python -m sandbox.engine build)"),
]

PR = 41
STACK = f"preview-pr-{PR}"
FUNCTION = f"webstack-api-{STACK}"
SCHEMA = f"app_pr_{PR}"
BRANCH = f"pr-{PR}"
COMMAND_PROVIDER = f"urn:pulumi:{STACK}::webstack::pulumi:providers:command::default_1_2_1"
CLOUDFLARE_PROVIDER = f"urn:pulumi:{STACK}::webstack::pulumi:providers:cloudflare::default_6_23_1"
AWS_PROVIDER = f"urn:pulumi:{STACK}::webstack::pulumi:providers:aws::aws"
VARIANTS = ("plugin name", "download url", "parameterization", "delete")


@dataclass
class Deployed:
    root: Path
    e: Endpoints
    stack: LocalStack
    cloud: Cloud
    genuine: dict[str, Any]
    downloads: StubServer

    @property
    def host(self) -> str:
        return f"{BRANCH}.www.{self.e.zone_name}"

    @property
    def markers(self) -> dict[str, Path]:
        return {"planted plugin": self.root / "planted-plugin-ran", "planted delete": self.root / "planted-delete-ran"}

    def evidence(self) -> list[str]:
        """What would show that something the planted state names ran."""
        found = [f"{what} wrote {path}" for what, path in self.markers.items() if path.exists()]
        found += [f"plugin download requested: {r.method} {r.path}" for r in self.downloads.requests]
        return found

    def planted(self, variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
        """The genuine state with the planted fields of `variants` (each a class of the issue)."""
        document = copy.deepcopy(self.genuine)
        resources = document["deployment"]["resources"]
        by_urn = {r["urn"]: r for r in resources}
        if "plugin name" in variants:
            by_urn[COMMAND_PROVIDER]["inputs"]["__internal"]["name"] = "evil"
        if "download url" in variants:
            # A plugin the machine does not have, from the author's server.
            by_urn[AWS_PROVIDER]["inputs"]["__internal"] |= {"name": "ghost", "pluginDownloadURL": f"{self.downloads.url}/plugins"}
        if "parameterization" in variants:
            cloudflare = by_urn[CLOUDFLARE_PROVIDER]["inputs"]
            cloudflare["__internal"] |= {"parameterization": "ZXZpbA==", "version": cloudflare["version"]}
            cloudflare["version"] = "6.0.0"
        if "delete" in variants:
            [cleanup] = [r for r in resources if r["urn"].endswith("::site-branch-cleanup")]
            for part in ("inputs", "outputs"):
                cleanup[part]["delete"] = f"touch {self.markers['planted delete']}"
        return document

    def plant(self, variants: tuple[str, ...] = VARIANTS) -> None:
        """The stored stack's state replaced by the planted one (what a PR's job could write)."""
        path = self.root / "planted.json"
        path.write_text(json.dumps(self.planted(variants)))
        if f'"name": "{STACK}"' not in self.stack.pulumi("stack", "ls", "--json").stdout:
            self.stack.pulumi("stack", "init", STACK, "--secrets-provider", "passphrase", "--cwd", str(self._scratch()))
        self.stack.pulumi("stack", "import", "--file", str(path))

    def _scratch(self) -> Path:
        scratch = self.root / "init"
        scratch.mkdir(exist_ok=True)
        (scratch / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
        return scratch

    def env(self) -> dict[str, str]:
        """The stack's environment with the planted plugin findable, as it would be on PATH."""
        env = self.stack.env()
        env["PATH"] = f"{self.root / 'planted-bin'}{os.pathsep}{env['PATH']}"
        return env

    def state_files(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.stack.backend))
            for p in (self.stack.backend / ".pulumi").rglob("*")
            if p.is_file() and STACK in p.relative_to(self.stack.backend).as_posix().split("/", 3)[-1]
        )

    def pages_domain(self) -> int:
        url = f"{self.e.cloudflare_api}/accounts/{self.e.cloudflare_account}/pages/projects/{PAGES_PROJECT}/domains/{self.host}"
        return requests.get(url, headers={"Authorization": f"Bearer {self.e.cloudflare_token}"}, timeout=10).status_code

    def preview(self) -> dict[str, Any]:
        """What of PR 41 exists, read from each service."""
        c = self.cloud
        return {
            "function": c.function(FUNCTION) is not None,
            "role": c.role_exists(f"{FUNCTION}-exec"),
            "schema": SCHEMA in c.schemas(),
            "deployments": len(c.deployments(BRANCH)),
            "dns": len(c.dns_records(self.host)),
            "pages domain": self.pages_domain() == 200,
            "state objects": len(self.state_files()),
        }


def sweeper_step() -> str:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "sweeper.yml").read_text())
    [step] = [s for s in workflow["jobs"]["teardown"]["steps"] if s.get("name") == "Remove the PR's preview"]
    return step["run"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("sweeper-teardown").resolve()
    endpoints = ensure_running(root)
    try:
        with StubServer() as downloads:
            downloads.script(lambda request: Reply(404, body="no such plugin"))
            app = copy_app(root / "app")
            stack = LocalStack(root=root, name=STACK, endpoints=endpoints)
            stack.init(appDir=str(app))
            stack.pulumi("up", "--yes")
            export = root / "genuine.json"
            stack.pulumi("stack", "export", "--file", str(export))
            # The plugin a planted `__internal.name` makes the engine look for on PATH.
            planted_bin = root / "planted-bin"
            planted_bin.mkdir()
            plugin = planted_bin / "pulumi-resource-evil"
            plugin.write_text(f"#!/bin/sh\ntouch {root / 'planted-plugin-ran'}\nexit 1\n")
            plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
            boto3.client(
                "dynamodb", endpoint_url=endpoints.aws, region_name="us-east-1",
                aws_access_key_id="sandbox", aws_secret_access_key="sandbox-secret-key",
            ).create_table(
                TableName=foundation_names("webstack", "-")["lock_table"],
                KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )  # fmt: skip
            database = re.sub(r"/[^/]*$", "/app", endpoints.database_url)
            yield Deployed(root, endpoints, stack, Cloud(endpoints, database), json.loads(export.read_text()), downloads)
    finally:
        stop(root)


def test_verify_state_passes_the_engines_export_and_refuses_the_planted_one(deployed: Deployed):
    declared = declaration_of(recording_for(STACK, deployed.stack.config_file))
    genuine = verify(deployed.genuine, declared)
    assert genuine["problems"] == [] and genuine["verified"], genuine["problems"]
    problems = verify(deployed.planted(), declared)["problems"]
    for field in ("__internal.name", "__internal.pluginDownloadURL", "__internal.parameterization", "inputs.version", "delete"):
        assert any(field in p for p in problems), (field, problems)


def test_the_sweeper_removes_the_pr_from_mains_program_and_runs_nothing_the_state_names(deployed: Deployed, tmp_path: Path):
    assert deployed.preview() == {
        "function": True, "role": True, "schema": True, "deployments": 1, "dns": 1, "pages domain": True,
        "state objects": deployed.preview()["state objects"],
    }  # fmt: skip
    assert deployed.preview()["state objects"] >= 2
    deployed.plant()

    script = sweeper_step().replace("--config-file Pulumi.preview.yaml", f"--config-file {deployed.stack.config_file}")
    assert script != sweeper_step()
    env = deployed.env() | {"PR": str(PR), "STACK": STACK, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    result = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert deployed.preview() == {
        "function": False, "role": False, "schema": False, "deployments": 0, "dns": 0, "pages domain": False,
        "state objects": 0,
    }, deployed.state_files()  # fmt: skip
    assert deployed.evidence() == []
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["failed"] == [] and summary["state_objects"] > 0 and len(summary["removed"]) == 6


@pytest.mark.parametrize("variant", ["plugin name", "download url", "delete"])
def test_pulumi_destroy_of_the_planted_state_would_have_run_what_it_names(deployed: Deployed, variant: str):
    """The counterfactual: the check above finds evidence when the planted state reaches the engine
    (one variant at a time: the first plugin the engine fails to load stops the rest)."""
    for marker in deployed.markers.values():
        marker.unlink(missing_ok=True)
    deployed.downloads.requests.clear()
    deployed.plant((variant,))
    env = deployed.env() | {"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "false"}
    argv = deployed.stack.argv("destroy", "--yes")
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    evidence = deployed.evidence()
    assert evidence, (
        "pulumi destroy of the planted state ran nothing it names: the sweeper test could not tell\n"
        + result.stdout[-3000:] + result.stderr[-3000:]
    )
    print("\n".join(evidence))
