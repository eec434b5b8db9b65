"""The generated parts of the documentation, from the facts they show.

    python -m tools.docs            # rewrite every generated block in place
    python -m tools.docs --check    # exit 1 naming each block that is stale (tests/test_docs.py)

A block sits between `<!-- generated: NAME (python -m tools.docs) -->` and `<!-- end: NAME -->`:
- `phases` (README.md): the phase diagram, from `core.phases` (PHASES and their summaries);
- `config-reference` (docs/configuration.md): every key Pulumi.yaml declares, its type, default
  and description, the secrets marked (`core.stack_files.SECRET_KEYS`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from core.phases import PHASE_SUMMARIES, PHASES
from core.stack_files import SECRET_KEYS

ROOT = Path(__file__).resolve().parents[1]


def phase_diagram() -> str:
    """Each phase waits for the one before it (builds excepted: they start when their inputs exist)."""
    lines = ["```mermaid", "graph TD"]
    for index, phase in enumerate(PHASES, start=1):
        lines.append(f'    {phase}["{index}. {phase}: {PHASE_SUMMARIES[phase]}"]')
    lines.extend(f"    {before} --> {after}" for before, after in zip(PHASES, PHASES[1:]))
    lines.append("```")
    return "\n".join(lines)


def _default(name: str, declaration: dict[str, Any], secret: bool) -> str:
    if "default" not in declaration:
        return "required"
    if secret and declaration["default"] == "":
        return "—"
    return f"`{json.dumps(declaration['default'])}`"


def config_reference(root: Path = ROOT) -> str:
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for full_name, declaration in project["config"].items():
        name = full_name.partition(":")[2]
        secret = name in SECRET_KEYS
        kind = f"{declaration['type']} (secret)" if secret else declaration["type"]
        description = " ".join(str(declaration.get("description", "")).split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {kind} | {_default(name, declaration, secret)} | {description} |")
    return "\n".join(lines)


BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "phases": ("README.md", phase_diagram),
    "config-reference": ("docs/configuration.md", config_reference),
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)} \(python -m tools\.docs\) -->\n)(.*?)(^<!-- end: {re.escape(name)} -->)", re.S | re.M
    )


def generated(text: str, name: str) -> str | None:
    """The current content of block `name` in `text`, or None when the markers are missing."""
    match = _pattern(name).search(text)
    return match[2].removesuffix("\n") if match else None


def refresh(root: Path = ROOT, *, check: bool = False) -> list[str]:
    """Rewrites (or with `check`, only compares) every block; returns what was stale or missing."""
    problems = []
    for name, (relative, render) in BLOCKS.items():
        path = root / relative
        text = path.read_text()
        current = generated(text, name)
        if current is None:
            problems.append(f"{relative}: no generated block `{name}` (its markers are missing)")
            continue
        wanted = render()
        if current != wanted:
            problems.append(f"{relative}: the block `{name}` is stale: run `python -m tools.docs`")
            if not check:
                path.write_text(_pattern(name).sub(lambda m: m[1] + wanted + "\n" + m[3], text, count=1))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    options = parser.parse_args(argv)
    problems = refresh(check=options.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    missing = [p for p in problems if "markers are missing" in p]
    return 1 if missing or (options.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
