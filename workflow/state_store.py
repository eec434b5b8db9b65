"""The DIY backend's objects, read as a listing and deleted by name, without the Pulumi CLI.

    store = open_store(os.environ["PULUMI_BACKEND_URL"])   # s3://BUCKET/PREFIX?region=R or file://DIR
    store.stacks("webstack")                               # [StoredStack(name, last_modified)]
    store.remove("webstack", "preview-pr-7")               # every object of the stack, then none left

`pulumi stack ls` reads every stack's checkpoint, prod's included, which a role limited to the
previews can neither read nor decrypt; `pulumi stack rm --force` takes the stack's lock, parses its
checkpoint and copies it into `backups/` (pkg/backend/diy, v3.274.1: `RemoveStack`, `removeStack`).
A stack whose state any pull request may have written is removed here instead: its objects are
listed by the layout's prefixes and deleted, and nothing in them is opened. No object is read, so
the caller needs `s3:ListBucket` and `s3:DeleteObject` only: no `s3:GetObject`, no KMS key.

The layout is the CLI's project-scoped one (pkg/backend/diy/store.go, stack_tags.go; checked against
bin/pulumi in tests/test_verified_destroy.py): `.pulumi/stacks/<project>/<stack>.json[.gz][.bak]`,
`<stack>.pulumi-tags` beside them, and the directories `history/<project>/<stack>/`,
`backups/<project>/<stack>/`, `locks/organization/<project>/<stack>/`. In a versioned bucket a delete
leaves the previous versions (a planted state stays available to whoever investigates it).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from core.names import SAFE_STACK_NAME
from steps.retry import PermanentError, TransientError, retry_call

ROOT = ".pulumi"
# A stack's checkpoint and its siblings (`.json`, `.json.gz`, `.json.bak`, `.pulumi-tags`): the
# name is followed by a dot, so `preview-pr-7.` never matches `preview-pr-70.json`.
STACK_FILE_SUFFIXES = (".json", ".json.gz", ".json.zst")


class StoreError(PermanentError):
    """The backend URL or a listing cannot be used; the message says which and how to fix it."""


@dataclass(frozen=True)
class StoredStack:
    name: str
    last_modified: str
    """ISO 8601, UTC: when the checkpoint object was last written (the last update)."""


def stack_prefixes(project: str, stack: str) -> list[str]:
    """Every key prefix (relative to the backend's root) under which the stack has objects."""
    if not SAFE_STACK_NAME.fullmatch(stack):
        raise StoreError(f"{stack!r} is not a stack name of this project (prod, preview, preview-pr-<N>)")
    return [
        f"{ROOT}/stacks/{project}/{stack}.",
        f"{ROOT}/history/{project}/{stack}/",
        f"{ROOT}/backups/{project}/{stack}/",
        f"{ROOT}/locks/organization/{project}/{stack}/",
    ]


def stack_name_of(key: str, project: str) -> str | None:
    """The stack a checkpoint key names (`.pulumi/stacks/<project>/<stack>.json[.gz]`), or None."""
    prefix = f"{ROOT}/stacks/{project}/"
    if not key.startswith(prefix):
        return None
    base = key[len(prefix) :]
    for suffix in STACK_FILE_SUFFIXES:
        if base.endswith(suffix) and "/" not in base:
            return base[: -len(suffix)]
    return None


class Store(Protocol):
    def keys(self, prefix: str) -> Iterator[tuple[str, str]]: ...
    def delete(self, keys: list[str]) -> None: ...


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class S3Store:
    bucket: str
    prefix: str
    client: Any

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def keys(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key relative to the backend root, last modified) of every object under `prefix`."""
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._full(prefix)):
            for item in page.get("Contents") or []:
                yield item["Key"][strip:], _iso(item["LastModified"])

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": self._full(k)} for k in chunk], "Quiet": True}
            )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise TransientError(
                    f"S3 refused to delete {len(errors)} object(s), e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )


@dataclass
class FileStore:
    """A `file://` backend (the sandbox's, the tests'): the same layout on disk."""

    root: Path

    def keys(self, prefix: str) -> Iterator[tuple[str, str]]:
        directory, _, start = prefix.rpartition("/")
        base = self.root / directory
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.name.endswith(".attrs"):
                continue  # gocloud's fileblob keeps each object's metadata in a `.attrs` sidecar
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                yield key, _iso(dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC))

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            for path in (self.root / key, self.root / f"{key}.attrs"):
                path.unlink(missing_ok=True)


def open_store(url: str, *, client: Any = None) -> Store:
    """The store of a `pulumi login` URL: `s3://BUCKET[/PREFIX][?region=R&...]` or `file://DIR`."""
    parsed = urlparse(url or "")
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"the backend URL {url!r} names no bucket (s3://BUCKET/PREFIX?region=R)")
        if client is None:
            import boto3

            query = parse_qs(parsed.query)
            region = (query.get("region") or [None])[0]
            endpoint = (query.get("endpoint") or [None])[0]
            client = boto3.client("s3", region_name=region, endpoint_url=endpoint)
        return S3Store(bucket=parsed.netloc, prefix=unquote(parsed.path).strip("/"), client=client)
    if parsed.scheme == "file":
        path = unquote(parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else unquote(parsed.path)
        return FileStore(root=Path(os.path.expanduser(path)))
    raise StoreError(
        f"the backend URL {url[:80]!r} is not an S3 or file backend: set PULUMI_BACKEND_URL to the "
        "`pulumi login` URL (s3://BUCKET/PREFIX?region=R)"
    )


def stacks(store: Store, project: str) -> list[StoredStack]:
    """The project's stacks, from the names of their checkpoint objects (none is opened)."""
    found: dict[str, str] = {}
    for key, modified in store.keys(f"{ROOT}/stacks/{project}/"):
        name = stack_name_of(key, project)
        if name is not None:
            found[name] = max(modified, found.get(name, ""))
    return [StoredStack(name, found[name]) for name in sorted(found)]


def stack_objects(store: Store, project: str, stack: str) -> list[str]:
    return sorted({key for prefix in stack_prefixes(project, stack) for key, _ in store.keys(prefix)})


def remove_stack(store: Store, project: str, stack: str) -> int:
    """Deletes every object of the stack and checks that none is left; returns how many there were.

    Idempotent: a stack with no objects is already removed. Transient S3 errors are retried.
    """

    def attempt() -> int:
        keys = stack_objects(store, project, stack)
        if keys:
            store.delete(keys)
        left = stack_objects(store, project, stack)
        if left:
            raise TransientError(f"{len(left)} object(s) of {stack} still listed after the delete, e.g. {left[0]}")
        return len(keys)

    return retry_call(attempt, what=f"remove the state objects of {stack}", attempts=5, deadline=300.0)
