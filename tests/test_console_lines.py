"""No step prints a line of 64 KiB or more: pulumi-command's log scanner stops at such a line and
the Command hangs (docs/facts.md; sandbox/engine/command reproduces it, tests/test_command_provider.py
shows the hang). steps.console bounds every line it prints: log lines, a tool's output relayed
line by line, and a step's result on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from steps.console import LINE_LIMIT, WRAP_LINES, bounded_lines, fit_result
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
SCANNER_LIMIT = 64 * 1024  # bufio.MaxScanTokenSize: a line must be shorter than this


def sizes(text: str) -> list[int]:
    return [len(line.encode("utf-8", "surrogateescape")) for line in text.split("\n")]


@pytest.mark.parametrize("text", ["x" * 200_000, "é" * 100_000, "a\n" + "€" * (LINE_LIMIT // 3 + 1) + "\nb", "x" * LINE_LIMIT])
def test_every_line_is_bounded_and_nothing_is_lost_silently(text):
    lines = bounded_lines(text)
    assert max(sizes("\n".join(lines))) <= LINE_LIMIT < SCANNER_LIMIT
    kept = "".join(line.removeprefix("  ↳ ") for line in lines if "more bytes of this line cut" not in line)
    cut = [line for line in lines if "more bytes of this line cut" in line]
    if len(text.encode()) <= (WRAP_LINES + 1) * (LINE_LIMIT - 8):
        assert kept.replace("\n", "") == text.replace("\n", "") and not cut
    else:
        assert len(cut) == 1 and text.startswith(kept.replace("\n", "")[:1000])


def test_a_short_line_is_left_alone():
    assert bounded_lines("step build: ok") == ["step build: ok"]


def test_a_long_result_stays_one_json_line_with_its_scalars_whole():
    result = {"id": "abc-123", "deleted": [f"deployment-{i:05d}-" + "x" * 30 for i in range(5000)], "branch": "pr-7"}
    line = fit_result(result)
    assert len(line.encode()) <= LINE_LIMIT and "\n" not in line
    value = json.loads(line)
    assert value["id"] == "abc-123" and value["branch"] == "pr-7"
    assert value["deleted"][-1].startswith("… ") and value["deleted"][0] == result["deleted"][0]


def step(code: str) -> subprocess.CompletedProcess[str]:
    """A step run as a Command runs one: `python -c` with the repository on the path."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_tool_printing_a_huge_line_reaches_the_log_in_bounded_lines():
    # What a minified bundle's error or a JSON dump from a tool looks like: one line of 300 KB.
    result = step(
        "import sys\n"
        "from steps.runtime import run_step, run_tool\n"
        "tool = [sys.executable, '-c', \"print('T' * 300_000)\"]\n"
        "sys.exit(run_step('demo', critical=True, body=lambda: run_tool(tool, cwd='.', timeout=60, what='tool').returncode))"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert max(sizes(result.stderr)) <= LINE_LIMIT
    assert "more bytes of this line cut" in result.stderr
    assert result.stdout == "0\n"


def test_a_huge_result_and_a_huge_log_line_are_bounded():
    result = step(
        "import sys\n"
        "from steps.runtime import log, run_step\n"
        "def body():\n"
        "    log('L' * 500_000)\n"
        "    return {'deleted': ['d' * 40] * 20_000, 'project': 'p'}\n"
        "sys.exit(run_step('demo', critical=True, body=body))"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert max(sizes(result.stderr)) <= LINE_LIMIT and max(sizes(result.stdout)) <= LINE_LIMIT
    assert json.loads(result.stdout)["project"] == "p"
