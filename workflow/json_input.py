"""JSON the workflow scripts read from outside (an exported state, a plan, a scanner's findings),
read without a traceback whatever it holds.

`loads(text, what)` and `read(path, what)` return the document or raise `JsonInputError`, one line
that names `what` and the problem. Besides what `json` refuses, a document nested deeper than
MAX_DEPTH is refused: Python's decoder raises RecursionError (no JSONDecodeError) somewhere past a
thousand levels, and the scripts walk documents recursively, which would fail at a smaller depth.
No document the pipeline writes nests a tenth as deep (a Pulumi state: about 15).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_DEPTH = 100


class JsonInputError(ValueError):
    """The input cannot be read as the JSON it should be."""


def depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (a scalar: 0), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        pending.extend((child, level) for child in children)
    return deepest


def loads(text: str | bytes, what: str) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonInputError(f"{what} nests lists or objects deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
        raise JsonInputError(f"{what} is not JSON{where}") from None
    if depth(value) > MAX_DEPTH:
        raise JsonInputError(f"{what} nests lists or objects deeper than {MAX_DEPTH} levels")
    return value


def read_text(path: Path, what: str, *, max_bytes: int | None = None) -> str:
    """The UTF-8 text of `path` (at most `max_bytes`), or one line that says why not."""
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise JsonInputError(f"{what} is over {max_bytes} bytes")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JsonInputError(f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise JsonInputError(f"{what} is not UTF-8") from None


def read(path: Path, what: str, *, max_bytes: int | None = None) -> Any:
    return loads(read_text(path, what, max_bytes=max_bytes), what)
