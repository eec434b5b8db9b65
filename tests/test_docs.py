"""The README and docs/ tell the truth and stay in the repository: the generated parts are fresh,
every link resolves, no path leaves the clone, the README stays short and its layout is the tree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from core.phases import PHASES
from tools import docs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


def test_the_generated_blocks_are_fresh():
    assert docs.refresh(ROOT, check=True) == []


def test_a_stale_block_is_found_and_rewritten(tmp_path):
    for relative in {path for path, _ in docs.BLOCKS.values()} | {"Pulumi.yaml"}:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((ROOT / relative).read_text())
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace('1. infrastructure: ', '1. infra: '))
    assert docs.refresh(tmp_path, check=True) == ["README.md: the block `phases` is stale: run `python -m tools.docs`"]
    assert docs.refresh(tmp_path) and docs.refresh(tmp_path, check=True) == []
    assert docs.generated(readme.read_text(), "phases") == docs.phase_diagram()


def test_the_diagram_has_every_phase_in_order():
    diagram = docs.generated(README.read_text(), "phases")
    nodes = re.findall(r'^    (\w+)\["(\d+)\. ', diagram, flags=re.M)
    assert nodes == [(phase, str(index)) for index, phase in enumerate(PHASES, start=1)]
    edges = re.findall(r"^    (\w+) --> (\w+)$", diagram, flags=re.M)
    assert edges == list(zip(PHASES, PHASES[1:]))


def test_the_readme_stays_short():
    size = len(README.read_bytes())
    assert size <= 8 * 1024, f"README.md is {size} bytes: move detail into a page of docs/ and link it"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_resolves_inside_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), flags=re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name}: {target}: no such heading in {path or page.name}"


def test_no_path_leaves_the_repository():
    # A clone has no ../shared: what the code and the docs cite lives in docs/.
    outside = re.compile(r"\.\./shared\b|shared/design")
    offenders = []
    for name in tracked_files():
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".yml", ".yaml", ".toml", ".ts", ".tsx", ".go", ".mjs", ".cjs", ".json", ""}:
            continue
        if name.startswith("tests/test_docs.py") or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}: {m[0]}" for m in outside.finditer(text)]
    assert offenders == []


def test_the_layout_is_the_tree():
    block = README.read_text().split("## Layout", 1)[1].split("```", 2)[1]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines() if line and not line.startswith(" ")}
    for entry in listed:
        assert (ROOT / entry).exists(), f"the README's layout lists {entry}, which does not exist"
    tops = {name.split("/")[0] for name in tracked_files()}
    directories = {top for top in tops if (ROOT / top).is_dir()}
    # Every directory of the repository is in the layout (.github by its workflows).
    assert directories - {entry.split("/")[0] for entry in listed} == set()
