"""What cannot import `core` says what `core` says: the workflows, the shell set-up, the app's
lockfile pins, the engine's Go modules. A fact changed in core fails here until every copy that
YAML, JSON, go.mod or shell has to spell out is changed with it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from core import versions

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _steps_using(action: str):
    for path in WORKFLOWS:
        for job_id, job in (yaml.safe_load(path.read_text()).get("jobs") or {}).items():
            for step in job.get("steps") or []:
                if str(step.get("uses", "")).startswith(f"{action}@"):
                    yield f"{path.stem}/{job_id}", step.get("with") or {}


def test_the_workflows_run_the_node_major_of_core():
    found = {where: str(given.get("node-version")) for where, given in _steps_using("actions/setup-node")}
    assert found, "no workflow sets up Node: the check would pass on nothing"
    assert found == {where: str(versions.NODE_MAJOR) for where in found}


def test_the_set_up_script_reads_its_versions_from_core():
    setup = (ROOT / ".ci" / "setup").read_text()
    for name in ("NODE_MAJOR", "POSTGRES_MAJOR"):
        assert f"python3 -m core.versions {name}" in setup, name
    # No major is written into the script itself.
    assert not re.search(rf"node@{versions.NODE_MAJOR}\b|postgresql-{versions.POSTGRES_MAJOR}\b|postgresql/{versions.POSTGRES_MAJOR}/", setup)
    # And what it reads is what core says, without site-packages (the set-up runs it
    # before any virtualenv exists).
    printed = subprocess.run(
        [sys.executable, "-S", "-m", "core.versions", "NODE_MAJOR"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0 and printed.stdout.strip() == str(versions.NODE_MAJOR), printed.stderr


def test_the_example_app_pins_the_pipelines_wrangler():
    package = json.loads((ROOT / "examples" / "app" / "package.json").read_text())
    pinned = {**package.get("dependencies", {}), **package.get("devDependencies", {})}.get("wrangler")
    assert pinned == versions.WRANGLER_VERSION
    lock = json.loads((ROOT / "examples" / "app" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/wrangler"]["version"] == versions.WRANGLER_VERSION


def test_the_engine_modules_build_against_the_cli_release_of_core():
    requires = {}
    for go_mod in sorted((ROOT / "sandbox" / "engine").glob("*/go.mod")):
        for module, version in re.findall(r"github\.com/pulumi/pulumi/(sdk|pkg)/v3 v(\S+)", go_mod.read_text()):
            requires[f"{go_mod.parent.name}:{module}"] = version
    assert {"cli:pkg", "cli:sdk", "python:sdk", "command:sdk"} <= set(requires)
    assert set(requires.values()) == {versions.PULUMI_CLI_VERSION}, requires


def test_the_number_of_phases_is_written_nowhere():
    # PHASES says how many there are; prose that counts them goes stale with the next phase.
    counted = re.compile(r"\b(two|three|four|five|six|seven|eight|nine|ten|[2-9]|1[0-9])[- ]phases?\b", re.I)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".yml", ".yaml", ".toml", ".ts", ".tsx", ""} or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}: {m[0]}" for m in counted.finditer(text) if name != "tests/test_core_facts.py"]
    assert found == []
