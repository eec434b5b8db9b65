"""docs/extending.md, followed on a scratch copy of the repository: its step and its phase are added
from the page's own code blocks, only the files the page names change (a step: 2 code files, a
phase: 2), and the offline plan and the tests the page names pass on the copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "extending.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE, flags=re.S)


def _git(root: Path, *argv: str) -> str:
    identity = ("-c", "user.name=recipe", "-c", "user.email=recipe@example.invalid")
    return subprocess.run(["git", *identity, *argv], cwd=root, capture_output=True, text=True, check=True).stdout


def _scratch_copy(target: Path) -> Path:
    """The tracked files of the repository, as a repository of their own (the tests read `git ls-files`)."""
    for name in _git(ROOT, "ls-files").split():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "before the recipe")
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name}: the page's edit does not apply ({old[:60]!r})"
    path.write_text(text.replace(old, new))


def _run(copy: Path, *argv: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))}
    return subprocess.run([sys.executable, *argv], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_recipe_adds_a_step_and_a_phase_in_two_code_files_each(tmp_path):
    copy = _scratch_copy(tmp_path / "repo")
    step_source, phase_function = (block for block in _blocks("python") if block.startswith(('"""Deploy step', "@phase")))
    phases_line = next(b for b in _blocks("python") if b.startswith("PHASES = "))
    summary_line = next(b for b in _blocks("python") if b.lstrip().startswith('"warm":'))

    # The step: its program, and its Command in a phase function.
    (copy / "steps" / "warm.py").write_text(step_source)
    # The phase: its entry (and summary) in core/phases.py, its function in components/pipeline.py.
    phases = copy / "core" / "phases.py"
    _edit(phases, re.search(r"^PHASES = .*$", phases.read_text(), flags=re.M)[0] + "\n", phases_line)
    _edit(phases, "PHASE_SUMMARIES = {\n", "PHASE_SUMMARIES = {\n" + summary_line)
    _edit(copy / "components" / "pipeline.py", "\ndef deploy(", "\n" + phase_function + "\n\ndef deploy(")

    _git(copy, "add", "-A")
    changed = set(_git(copy, "diff", "--cached", "--name-only").split())
    assert changed == {"steps/warm.py", "core/phases.py", "components/pipeline.py"}
    # (a step: steps/warm.py + components/pipeline.py; a phase: core/phases.py + components/pipeline.py)

    # What the page says to run next.
    docs = _run(copy, "-m", "tools.docs")
    assert "warm: the API's containers warmed" in (copy / "README.md").read_text(), docs.stderr
    for stack in ("prod", "preview-pr-7"):
        plan = _run(copy, "-m", "tools.plan", "--stack", stack)
        assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
        assert "5. warm (1 resources)" in plan.stdout and "- api-warm (command:local:Command)" in plan.stdout
        assert "Phase order: holds" in plan.stdout

    # The secrets test finds the new step and fails until it is run with sentinel secrets...
    secrets_test = "tests/test_step_output_secrets.py"
    found = _run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow", secrets_test, "-k", "every_step")
    assert found.returncode != 0 and "steps ['warm'] are not run with sentinel secrets" in found.stdout, found.stdout[-2000:]
    _edit(copy / secrets_test, "FAILURES = {\n", 'FAILURES = {\n    "warm": ["steps.warm", "--url", "URL", "--timeout", "1"],\n')
    # ... and the tests the page names pass on the copy.
    tests = _run(
        # The secrets test is in the slow tier (a subprocess per step); the rest are fast.
        copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not engine",
        "tests/test_wiring.py", "tests/test_docs.py", "tests/test_import_contract.py", secrets_test,
        # The phase order (and its mutations), the docs, the import contract, the new step's secrets.
        "-k", "order or docs or generated or link or layout or repository or warm or every_step",
        timeout=1200,
    )
    assert tests.returncode == 0, tests.stdout[-4000:]


def test_the_recipe_is_what_the_test_follows():
    # The page's blocks the test applies are there, and name the same step and phase.
    assert any(b.startswith('"""Deploy step: warm') for b in _blocks("python"))
    assert any(b.startswith("@phase\ndef warm(run: Run)") for b in _blocks("python"))
    assert any(b.startswith("PHASES = (") and '"warm"' in b for b in _blocks("python"))
