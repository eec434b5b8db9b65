"""Build outputs in the artifacts bucket, addressed by content hash: what lets any runner deploy them.

A build publishes what it made (the Lambda bundle's zip, the site's export as a tarball) to
`s3://<bucket>/<prefix>/<kind>/<sha256>.<ext>`, `<prefix>` being the stack's own
(`core.names.artifact_prefix`: `prod`, `previews/preview-pr-7`), and prints where it put it.
What deploys it later reads only that record: the function takes `s3Bucket`/`s3Key`/
`s3ObjectVersion` from it, the Pages deploy fetches the export when its runner has no intact copy.
Nothing then depends on files an earlier run left on another machine, or on a Command's `archive`
output (which upstream's refresh empties: docs/facts.md, pulumi_command).

- The key is the sha256 of the object's bytes and the object's version is pinned: a later write
  to the same key (another run, a person with write access) changes neither what the function
  was given nor what a deploy fetches. The bucket must be versioned; one that is not is refused.
- A key that already holds an object is reused only after its bytes are read back and hash to the
  key: a broken copy (a partial upload, an object overwritten by hand) is replaced by a new
  version, with a warning.
- `fetch` reads the pinned version and refuses bytes that do not hash to the record.
- The zip and the tarball are deterministic (sorted entries, fixed times and modes): the same
  files give the same key, so an unchanged rebuild uploads nothing new.
- `kms_key` (a key id, ARN or alias) encrypts the object with that key; without one the bucket's
  default encryption applies.

CLI (for a person; the builds call the library): `python -m steps.artifacts fetch --artifact JSON
--out FILE` writes the verified bytes of a record.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steps.args import StepParser, local_path
from steps.retry import PermanentError, aws_error, retry_call
from steps.runtime import log, run_step, shown, warn

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
_SHA256 = frozenset("0123456789abcdef")


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """Where a build's output is, and what it is: the record a build prints on stdout."""

    sha256: str
    """The build's own content digest (the bundle's APP_VERSION, the export's tree hash)."""
    bucket: str
    key: str
    version: str
    """The S3 object version the record pins."""
    object_sha256: str
    """sha256 of the object's bytes (also the key's file name)."""

    def line(self) -> dict[str, str]:
        return asdict(self)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key} (version {self.version})"


def parse_artifact(text: str | Mapping[str, Any]) -> Artifact:
    """The record a build printed (its stdout, one JSON line), checked field by field."""
    try:
        value = json.loads(text) if isinstance(text, str) else dict(text)
    except ValueError:
        raise PermanentError(
            f"the build's record is not JSON: {shown(text)}",
            hint="the record is the build Command's stdout; re-run the build (`pulumi up --replace` on it)",
        ) from None
    fields = {name: value.get(name) if isinstance(value, Mapping) else None for name in Artifact.__dataclass_fields__}
    missing = [name for name, item in fields.items() if not isinstance(item, str) or not item]
    if missing:
        raise PermanentError(
            f"the build's record lacks {', '.join(missing)}: {shown(text)}",
            hint="the record is the build Command's stdout; re-run the build (`pulumi up --replace` on it)",
        )
    for name in ("sha256", "object_sha256"):
        if len(fields[name]) != 64 or not set(fields[name]) <= _SHA256:
            raise PermanentError(f"the build's record has a {name} that is not a sha256: {shown(fields[name])}")
    return Artifact(**fields)


def artifact_of(stdout: str) -> dict[str, str]:
    """A build Command's stdout as the plain dict the program reads (pure; used in `.apply`)."""
    return parse_artifact(stdout).line()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def deterministic_zip(root: Path, files: Iterable[Path]) -> bytes:
    """A zip of `files` (named relative to `root`): sorted, fixed times, mode 0644, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_EPOCH)
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def deterministic_tarball(root: Path, files: Iterable[Path]) -> bytes:
    """A gzipped tar of `files` (named relative to `root`): sorted, no times, owners or modes of the runner."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mode, info.mtime = len(data), FILE_MODE, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def extract_tarball(data: bytes, into: Path) -> list[Path]:
    """Unpack a tarball made by `deterministic_tarball` into `into`; refuses anything but plain
    files inside it (no links, devices, absolute or `..` names)."""
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    written = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            target = (root / member.name).resolve()
            if not member.isfile() or root not in target.parents:
                raise PermanentError(f"the site tarball holds {shown(member.name)}, which is not a plain file inside it")
            target.parent.mkdir(parents=True, exist_ok=True)
            extracted = archive.extractfile(member)
            target.write_bytes(extracted.read() if extracted else b"")
            written.append(target)
    return written


def s3_client() -> Any:
    import boto3
    from botocore.config import Config

    # One attempt per call: retries belong to the runtime (logged, bounded, jittered).
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=120)
    return boto3.client("s3", region_name=os.environ.get("AWS_REGION") or None, config=config)


def _code(exc: BaseException) -> str:
    found = aws_error(exc)
    return found[0] if found else ""


def _missing(exc: BaseException) -> bool:
    return _code(exc) in ("404", "NoSuchKey", "NoSuchVersion", "NotFound")


def _refused(exc: BaseException, action: str, where: str) -> Exception:
    """AccessDenied and a missing bucket as one line that says what to do; anything else as is."""
    code = _code(exc)
    if code == "NoSuchBucket":
        return PermanentError(
            f"the artifacts bucket of {where} does not exist",
            hint="prod's first `pulumi up` creates it (account foundation, `artifactsBucket`); deploy prod first",
        )
    if code in ("AccessDenied", "403", "Forbidden"):
        return PermanentError(
            f"AccessDenied: the deploy role may not {action} on {where}",
            hint=(
                f"the stack's role writes and reads only its own prefix of the artifacts bucket "
                f"(components/aws_policies.py _artifact_access): check that {where} is under this stack's prefix "
                "and that the role's policy is applied (prod's `pulumi up`)"
            ),
        )
    return exc


def _exists(client: Any, bucket: str, key: str) -> bool:
    """Whether `key` exists, asked by listing it: the deploy roles may list their own prefix only,
    and without that grant S3 answers a missing key with 403 like a refused one."""
    where = f"s3://{bucket}/{key}"
    try:
        answer = client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except Exception as exc:
        raise _refused(exc, "s3:ListBucket", where) from exc
    return any(item.get("Key") == key for item in answer.get("Contents") or [])


def _read(client: Any, bucket: str, key: str, version: str | None) -> bytes:
    kwargs = {"VersionId": version} if version else {}
    return client.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


def publish(
    data: bytes, *, sha256: str, bucket: str, prefix: str, kind: str, suffix: str, kms_key: str = "", client: Any = None
) -> Artifact:
    """Put `data` at `<prefix>/<kind>/<sha256 of data><suffix>` unless an intact copy is there;
    return the record that pins the object version."""
    client = client or s3_client()
    object_sha256 = sha256_hex(data)
    key = f"{prefix.strip('/')}/{kind}/{object_sha256}{suffix}"
    where = f"s3://{bucket}/{key}"

    def existing() -> str | None:
        if not _exists(client, bucket, key):
            return None
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return None
            raise _refused(exc, "s3:GetObject", where) from exc
        version = head.get("VersionId")
        if not version or version == "null":
            return None  # written before versioning: replaced by a versioned copy below
        try:
            held = _read(client, bucket, key, version)
        except Exception as exc:
            if _missing(exc):
                return None
            if _code(exc) in ("AccessDenied", "403", "Forbidden"):
                # Listed and seen, but not readable: S3 answers so when the object is under a key
                # this role may not use (written before the artifacts bucket had a key of its own,
                # issue 27). A new version under the bucket's key replaces it; a real refusal of
                # the prefix fails the upload with its own line.
                warn(f"artifacts: {where} (version {version}) is not readable with this role's keys; uploading it again")
                return None
            raise _refused(exc, "s3:GetObjectVersion", where) from exc
        if sha256_hex(held) == object_sha256:
            return version
        warn(f"artifacts: {where} (version {version}) is a broken copy (sha256 {sha256_hex(held)}); uploading it again")
        return None

    def upload() -> str:
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
        try:
            answer = client.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ChecksumSHA256=base64.b64encode(bytes.fromhex(object_sha256)).decode(),
                ContentType="application/zip" if suffix == ".zip" else "application/gzip",
                **extra,
            )
        except Exception as exc:
            raise _refused(exc, "s3:PutObject", where) from exc
        version = answer.get("VersionId")
        if not version or version == "null":
            raise PermanentError(
                f"s3://{bucket} returned no object version for {key}: the artifacts bucket is not versioned",
                hint="turn on versioning for the artifacts bucket (prod's `pulumi up` does); a pinned version is what a deploy reads",
            )
        return version

    version = retry_call(existing, what=f"look for {where}")
    if version is None:
        version = retry_call(upload, what=f"upload {where}")
        log(f"artifacts: uploaded {len(data)} bytes to {where} (version {version})")
    else:
        log(f"artifacts: {where} (version {version}) already holds these bytes")
    return Artifact(sha256=sha256, bucket=bucket, key=key, version=version, object_sha256=object_sha256)


def fetch(artifact: Artifact, *, client: Any = None) -> bytes:
    """The pinned version's bytes, refused unless they hash to the record."""
    client = client or s3_client()

    def read() -> bytes:
        try:
            return _read(client, artifact.bucket, artifact.key, artifact.version)
        except Exception as exc:
            if _missing(exc):
                raise PermanentError(
                    f"{artifact.where} is gone",
                    hint="rebuild it: `pulumi up --replace` on the build Command that printed this record",
                ) from None
            raise _refused(exc, "s3:GetObjectVersion", artifact.where) from exc

    data = retry_call(read, what=f"fetch {artifact.where}")
    if sha256_hex(data) != artifact.object_sha256:
        raise PermanentError(
            f"{artifact.where} is a broken copy: sha256 {sha256_hex(data)}, the build recorded {artifact.object_sha256}",
            hint="nothing was deployed from it; rebuild it: `pulumi up --replace` on the build Command that printed this record",
        )
    return data


# --- claims: which resource owns something a delete would remove ---------------------------------


def claim_key(prefix: str, name: str) -> str:
    return f"{prefix.strip('/')}/claims/{name}.json"


def put_claim(*, bucket: str, prefix: str, name: str, claim: str, client: Any = None) -> None:
    """Record that the resource whose create printed `claim` now owns `name` (the newest wins)."""
    client = client or s3_client()
    key = claim_key(prefix, name)

    def put() -> None:
        try:
            client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"claim": claim}).encode(), ContentType="application/json")
        except Exception as exc:
            raise _refused(exc, "s3:PutObject", f"s3://{bucket}/{key}") from exc

    retry_call(put, what=f"claim {name}")


def current_claim(*, bucket: str, prefix: str, name: str, client: Any = None) -> str | None:
    """The claim that owns `name` now, or None when nobody recorded one (or it expired)."""
    client = client or s3_client()
    key = claim_key(prefix, name)

    def read() -> str | None:
        if not _exists(client, bucket, key):
            return None
        try:
            data = _read(client, bucket, key, None)
        except Exception as exc:
            if _missing(exc):
                return None
            raise _refused(exc, "s3:GetObject", f"s3://{bucket}/{key}") from exc
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value.get("claim") if isinstance(value, dict) and isinstance(value.get("claim"), str) else None

    return retry_call(read, what=f"read the claim on {name}")


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m steps.artifacts", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("fetch", help="write the verified bytes of a build's record to a file")
    p.add_argument("--artifact", required=True, help="the build's record (its stdout)")
    p.add_argument("--out", required=True, type=local_path, help="where the bytes go")
    args = parser.parse_args(argv)

    def body() -> dict[str, str]:
        artifact = parse_artifact(args.artifact)
        data = fetch(artifact)
        Path(args.out).write_bytes(data)
        return {"fetched": artifact.where, "out": str(args.out), "bytes": str(len(data))}

    return run_step("artifacts-fetch", critical=True, body=body, attempts=1)


if __name__ == "__main__":
    sys.exit(main())
