"""Stand-in of actions/cache/restore and actions/cache/save v4.2.3
(5a3ec84eff668545956fd18022155c47e93e2684), over a local cache directory keyed as GitHub's cache
service keys it. Also the cache setup-python and setup-node use (`cache: pip` / `cache: npm`).

Mirrors upstream's src/restoreImpl.ts and src/saveImpl.ts on @actions/cache (toolkit
packages/cache: cache.ts, internal/cacheUtils.ts) and the service's rules:

- an entry is (scope, version, key): `version` is the sha256 of the `path` lines as written plus
  the compression method (so other paths never match), `scope` is the ref of the run that saved it;
- restore looks for the primary key exactly, then each restore key as a prefix (newest entry
  first), in the run's own ref, then (pull_request) the base branch, then the default branch. A
  cache a PR run saved is never seen by `main` (GitHub's cache isolation between branches);
- outputs: `cache-hit` is 'true' only for an exact match of the primary key (case-insensitive,
  `localeCompare` with `sensitivity: accent`), and it is not set at all on a miss (upstream
  issue 1466); `cache-primary-key` and `cache-matched-key`;
- keys: at most 10, each at most 512 characters, no commas (ValidationError); no ref -> a warning
  and nothing happens (upstream's isValidEvent);
- save: an existing (scope, version, key) is not overwritten ("Unable to reserve cache with key",
  a warning); paths that match nothing are a warning, not a failure; the archive holds the paths
  relative to the workspace (`tar -P`), so `~/.npm` restores to the same place on the next runner.

The directory is WEBSTACK_RUNNER_CACHE (sandbox/workflow_runner.py: one per local "repository";
a test empties it to run with a cold cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess  # tar with list argv  # nosec B404
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.actions.toolkit import (
    ActionFailed,
    get_bool_input,
    get_input,
    get_multiline_input,
    get_state,
    info,
    runner_setting,
    save_state,
    set_output,
    warning,
    workspace,
)

COMPRESSION = "gzip"
MAX_KEYS = 10
MAX_KEY_LENGTH = 512


def cache_version(paths: list[str]) -> str:
    return hashlib.sha256("|".join([*paths, COMPRESSION]).encode()).hexdigest()


def check_key(key: str) -> None:
    if len(key) > MAX_KEY_LENGTH:
        raise ActionFailed(f"Key Validation Error: {key} cannot be larger than {MAX_KEY_LENGTH} characters.")
    if "," in key:
        raise ActionFailed(f"Key Validation Error: {key} cannot contain commas.")


def exact_match(primary: str, matched: str | None) -> bool:
    return bool(matched) and matched.casefold() == primary.casefold()


def _event() -> dict:
    try:
        return json.loads(Path(os.environ.get("GITHUB_EVENT_PATH", "")).read_text())
    except (OSError, ValueError):
        return {}


def scopes() -> list[str]:
    """The refs whose caches this run may read, in the order the service tries them."""
    ref = os.environ.get("GITHUB_REF", "")
    found = [ref]
    if os.environ.get("GITHUB_BASE_REF"):
        found.append(f"refs/heads/{os.environ['GITHUB_BASE_REF']}")
    default = (_event().get("repository") or {}).get("default_branch") or "main"
    found.append(f"refs/heads/{default}")
    return list(dict.fromkeys(s for s in found if s))


@dataclass(frozen=True)
class Entry:
    scope: str
    version: str
    key: str
    created: float
    archive: Path


class CacheStore:
    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def of_runner(cls) -> CacheStore:
        return cls(Path(runner_setting("WEBSTACK_RUNNER_CACHE")))

    def _scope_dir(self, scope: str) -> Path:
        return self.root / hashlib.sha256(scope.encode()).hexdigest()[:24]

    def entries(self, scope: str) -> list[Entry]:
        index = self._scope_dir(scope) / "index.jsonl"
        if not index.exists():
            return []
        found = []
        for line in index.read_text().splitlines():
            record = json.loads(line)
            found.append(Entry(scope, record["version"], record["key"], record["created"], self._scope_dir(scope) / record["archive"]))
        return found

    def find(self, keys: list[str], version: str) -> Entry | None:
        for scope in scopes():
            candidates = [e for e in self.entries(scope) if e.version == version and e.archive.exists()]
            exact = [e for e in candidates if e.key == keys[0]]
            if exact:
                return exact[-1]
            for prefix in keys[1:]:
                matching = sorted((e for e in candidates if e.key.startswith(prefix)), key=lambda e: e.created)
                if matching:
                    return matching[-1]
        return None

    def add(self, key: str, version: str, archive_from: Path) -> Entry | None:
        """Store the archive under the run's own ref; None when that key exists there already."""
        scope = os.environ.get("GITHUB_REF", "")
        directory = self._scope_dir(scope)
        directory.mkdir(parents=True, exist_ok=True)
        if any(e.key == key and e.version == version for e in self.entries(scope)):
            return None
        name = f"{hashlib.sha256(f'{version}/{key}'.encode()).hexdigest()[:32]}.tgz"
        os.replace(archive_from, directory / name)
        entry = Entry(scope, version, key, time.time(), directory / name)
        with (directory / "index.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"version": version, "key": key, "created": entry.created, "archive": name, "ref": scope}) + "\n")
        return entry


def resolve_paths(patterns: list[str], root: Path) -> list[Path]:
    """@actions/glob with implicitDescendants off: files and directories the patterns name."""
    home = Path(os.environ.get("HOME") or Path.home())
    found: list[Path] = []
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        expanded = str(home) + pattern[1:] if pattern.startswith("~") else pattern
        base = Path(expanded)
        if not base.is_absolute():
            base = root / base
        if any(c in expanded for c in "*?["):
            anchor = Path(base.anchor)
            found += sorted(anchor.glob(str(base.relative_to(anchor))))
        elif base.exists():
            found.append(base)
    return list(dict.fromkeys(p.resolve() for p in found))


def restore(primary: str, restore_keys: list[str], paths: list[str]) -> str | None:
    """Restore into the workspace; returns the matched key (None on a miss)."""
    keys = [primary, *restore_keys]
    if len(keys) > MAX_KEYS:
        raise ActionFailed(f"Key Validation Error: Keys are limited to a maximum of {MAX_KEYS}.")
    for key in keys:
        check_key(key)
    entry = CacheStore.of_runner().find(keys, cache_version(paths))
    if entry is None:
        return None
    done = subprocess.run(  # noqa: S603,S607  # nosec
        ["tar", "-xzf", str(entry.archive), "-P", "-C", str(workspace())], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ActionFailed(f"tar failed restoring {entry.key}: {done.stderr.strip()[-300:]}")
    return entry.key


def save(key: str, paths: list[str]) -> bool:
    """Save the paths under `key`; a warning (never a failure) when it cannot, as upstream."""
    check_key(key)
    root = workspace()
    resolved = resolve_paths(paths, root)
    if not resolved:
        warning("Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.")
        return False
    store = CacheStore.of_runner()
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.root) as tmp:
        manifest = Path(tmp, "manifest.txt")
        manifest.write_text("\n".join(os.path.relpath(p, root) for p in resolved) + "\n")
        archive = Path(tmp, "cache.tgz")
        done = subprocess.run(  # noqa: S603,S607  # nosec
            ["tar", "-czf", str(archive), "-P", "-C", str(root), "--files-from", str(manifest)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            warning(f"Failed to save: tar exited {done.returncode}: {done.stderr.strip()[-300:]}")
            return False
        if store.add(key, cache_version(paths), archive) is None:
            warning(f"Failed to save: Unable to reserve cache with key {key}, another job may be creating this cache.")
            return False
    return True


def _valid_event() -> bool:
    if os.environ.get("GITHUB_REF"):
        return True
    info(f"[warning]Event Validation Error: The event type {os.environ.get('GITHUB_EVENT_NAME')} is not supported "
         "because it's not tied to a branch or tag ref.")  # fmt: skip
    return False


def restore_step() -> None:
    if not _valid_event():
        return
    primary = get_input("key", required=True)
    set_output("cache-primary-key", primary)
    restore_keys = get_multiline_input("restore-keys")
    paths = [re.sub(r"^!\s+", "!", p) for p in get_multiline_input("path", required=True)]
    matched = restore(primary, restore_keys, paths)
    if matched is None:
        if get_bool_input("fail-on-cache-miss"):
            raise ActionFailed(f"Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: {primary}")
        info(f"Cache not found for input keys: {', '.join([primary, *restore_keys])}")
        return
    set_output("cache-matched-key", matched)
    set_output("cache-hit", str(exact_match(primary, matched)).lower())
    info(f"Cache restored from key: {matched}")


def save_step() -> None:
    if not _valid_event():
        return
    primary = get_input("key")
    if not primary:
        info("[warning]Key is not specified.")
        return
    paths = [re.sub(r"^!\s+", "!", p) for p in get_multiline_input("path", required=True)]
    if save(primary, paths):
        info(f"Cache saved with key: {primary}")
    else:
        warning("Cache save failed.")


# setup-python / setup-node: their cache-distributor (restore in main, save in post).
def restore_tool_cache(primary: str, restore_keys: list[str], paths: list[str]) -> None:
    save_state("cache-paths", json.dumps(paths))
    save_state("cache-primary-key", primary)
    matched = restore(primary, restore_keys, paths)
    if matched:
        save_state("cache-matched-key", matched)
        info(f"Cache restored from key: {matched}")
    else:
        info("cache is not found")
    set_output("cache-hit", str(matched == primary).lower())


def save_tool_cache() -> None:
    state = get_state("cache-paths")
    if not state:
        return
    primary, matched = get_state("cache-primary-key"), get_state("cache-matched-key")
    if matched == primary:
        info(f"Cache hit occurred on the primary key {primary}, not saving cache.")
        return
    paths = json.loads(state)
    if save(primary, paths):
        info(f"Cache saved with the key: {primary}")


STAGES = {("cache-restore", "main"): restore_step, ("cache-save", "main"): save_step}
