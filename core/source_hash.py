"""Content hashes of the app's sources: the `triggers` that make a Command re-run on purpose only.

A hash covers file names and bytes, never timestamps or absolute paths, so the same tree gives the
same hash on every machine and an unchanged push re-runs nothing. The build steps hash what they
built with the same `files_hash` (`output_hash`), so a trigger and the hash a build prints mean the
same thing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

# Build outputs and installed dependencies are results, not sources.
IGNORED_DIRECTORIES = frozenset({"node_modules", ".next", "out", "dist", ".turbo", ".wrangler", ".git"})
IGNORED_SUFFIXES = (".tsbuildinfo", ".log")
# Files a build writes into the sources: `next build` creates next-env.d.ts in the web app. Hashed,
# it would change the web hash after the first build on a machine and rebuild every time after
# (the real engine showed it: a second `pulumi up` replaced the site build and its deploy).
IGNORED_FILES = frozenset({"next-env.d.ts"})


def _files_under(path: Path):
    if path.is_file():
        yield path
        return
    for directory, subdirectories, files in os.walk(path):
        subdirectories[:] = sorted(d for d in subdirectories if d not in IGNORED_DIRECTORIES)
        for name in sorted(files):
            if not name.endswith(IGNORED_SUFFIXES) and name not in IGNORED_FILES:
                yield Path(directory) / name


def _update(digest, root: Path, file: Path) -> None:
    digest.update(f"file:{file.relative_to(root).as_posix()}\0".encode())
    digest.update(hashlib.sha256(file.read_bytes()).digest())


def files_hash(root: Path, files: Iterable[Path]) -> str:
    """sha256 over the names (relative to `root`) and bytes of `files`, in the order given."""
    digest = hashlib.sha256()
    for file in files:
        _update(digest, root, file)
    return digest.hexdigest()


def output_hash(root: Path) -> str:
    """What a build prints on stdout, the next Command's trigger: sha256 (`files_hash`) over the
    relative names and bytes of every file under `root`, sorted by name, nothing left out. Of a
    Lambda bundle, it is taken over exactly what Lambda extracts and is the function's APP_VERSION;
    of a site, over the static export."""
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    return files_hash(root, files)


def tree_hash(root: Path, *parts: str) -> str:
    """sha256 over the relative names and contents of every source file under `root/part`.

    A part that does not exist counts as empty (and still changes the hash when it appears).
    """
    digest = hashlib.sha256()
    for part in sorted(parts):
        digest.update(f"part:{part}\0".encode())
        target = root / part
        if not target.exists():
            continue
        for file in _files_under(target):
            _update(digest, root, file)
    return digest.hexdigest()


def combine(*digests: str) -> str:
    """One hash of several (e.g. an app part's and the program that builds it)."""
    return hashlib.sha256("\0".join(digests).encode()).hexdigest()
