"""A clean, fast environment for tests of deploy steps (fixture `steps_env`).

Removes every variable that changes what the steps runtime does (secrets, GitHub Actions,
the alert webhook), shrinks retry waits 100-fold (`STEPS_RETRY_SCALE=0.01`) and points the skip
log into the test's tmp_path. Use it with `pytestmark = pytest.mark.usefixtures("steps_env")`
after importing it, or through `pytest_plugins`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from steps.console import SECRET_ENV_NAMES

REPO = Path(__file__).resolve().parents[2]
_CLEARED_PREFIXES = ("GITHUB_", "STEPS_", "RUNNER_")


@dataclass(frozen=True)
class StepsEnv:
    skip_log: Path
    tmp: Path

    def child_env(self, **extra: str) -> dict[str, str]:
        """os.environ (as the test set it) plus `extra`, for running a step as a real process."""
        return {**os.environ, **extra}


@pytest.fixture
def steps_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StepsEnv:
    for name in list(os.environ):
        if name in SECRET_ENV_NAMES or name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("STEPS_RETRY_SCALE", "0.01")
    skip_log = tmp_path / "skipped-steps.jsonl"
    monkeypatch.setenv("STEPS_SKIP_LOG", str(skip_log))
    return StepsEnv(skip_log=skip_log, tmp=tmp_path)


def run_step(module: str, *args: str, url: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m <module> ARGS` from the repository root with DATABASE_URL=url, as a workflow runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    """The JSON result line a successful step printed last."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
