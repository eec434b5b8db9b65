"""The processes below a process, and killing all of them.

A process group is not enough: the Pulumi engine starts each plugin (a provider, the language host)
in a process group of its own, and act starts each step in a session of its own, so killing the
group of `pulumi` or `act` leaves a plugin or a hung step running. These walk /proc instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found, then theirs), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process below it (listed before any is killed: an orphan would be
    re-parented out of reach)."""
    for target in [*descendants(pid), pid]:
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)
