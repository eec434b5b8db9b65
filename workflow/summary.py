"""Where a workflow script's Markdown goes: the file it was given, else the job summary, else stdout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from steps.console import mask


def write_summary(markdown: str, target: Path | None, env: Mapping[str, str]) -> None:
    """Append `markdown` (masked) to `target`, or to GITHUB_STEP_SUMMARY, or print it."""
    text = mask(markdown)
    path = target or (Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None)
    if path is None:
        print(text)
        return
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(text)
