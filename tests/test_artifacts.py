"""steps.artifacts: build outputs in the artifacts bucket by content hash, on the real moto_server.

What a deploy may rely on: the same files give the same bytes and key (an unchanged rebuild
uploads nothing), the record pins an object version, a broken copy under a key is never reused
nor deployed, an unversioned bucket is refused, and a tarball cannot write outside where it is
unpacked.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import boto3
import pytest

from steps import artifacts
from steps.retry import PermanentError
from tests.support.moto import ARTIFACTS_BUCKET, artifacts_bucket, aws_env, moto_server  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

PREFIX = "previews/preview-pr-7"


def tree(root: Path, files: dict[str, str]) -> list[Path]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_zip_and_tarball_are_the_same_bytes_for_the_same_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    files = {"dist/index.js": "exports.handler = 1", "data/prices.json": "{}", "z.txt": "é"}
    first, second = tree(a, files), tree(b, dict(reversed(list(files.items()))))
    (b / "z.txt").touch()  # another mtime: not in the bytes
    assert artifacts.deterministic_zip(a, first) == artifacts.deterministic_zip(b, second)
    assert artifacts.deterministic_tarball(a, first) == artifacts.deterministic_tarball(b, second)
    (b / "z.txt").write_text("changed")
    assert artifacts.deterministic_tarball(a, first) != artifacts.deterministic_tarball(b, second)


def test_a_tarball_unpacks_plain_files_inside_only(tmp_path):
    files = tree(tmp_path / "site", {"index.html": "<html>", "_next/app.js": "x"})
    unpacked = artifacts.extract_tarball(artifacts.deterministic_tarball(tmp_path / "site", files), tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in unpacked) == ["_next/app.js", "index.html"]
    for evil in ("../escape.txt", "/etc/x", "link"):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:gz") as archive:
            info = tarfile.TarInfo(evil)
            if evil == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info, io.BytesIO(b""))
        with pytest.raises(PermanentError, match="not a plain file inside it"):
            artifacts.extract_tarball(raw.getvalue(), tmp_path / "evil")
    assert not (tmp_path / "escape.txt").exists()


def test_a_record_is_checked_field_by_field():
    good = {"sha256": "a" * 64, "bucket": "b", "key": "k", "version": "v", "object_sha256": "c" * 64}
    assert artifacts.parse_artifact(json.dumps(good)).line() == good
    for bad, why in (("not json", "not JSON"), (json.dumps({**good, "version": ""}), "lacks version"),
                     (json.dumps({**good, "sha256": "xyz"}), "not a sha256")):  # fmt: skip
        with pytest.raises(PermanentError, match=why):
            artifacts.parse_artifact(bad)


@pytest.mark.slow
def test_publish_pins_a_version_and_reuses_only_an_intact_copy(artifacts_bucket):
    s3 = boto3.client("s3")
    data = b"zip bytes of a bundle"
    first = artifacts.publish(data, sha256="d" * 64, bucket=artifacts_bucket, prefix=PREFIX, kind="api", suffix=".zip")
    assert first.key == f"{PREFIX}/api/{artifacts.sha256_hex(data)}.zip" and first.object_sha256 == artifacts.sha256_hex(data)
    again = artifacts.publish(data, sha256="d" * 64, bucket=artifacts_bucket, prefix=PREFIX, kind="api", suffix=".zip")
    assert again == first  # nothing uploaded: the intact copy's version is reused
    assert len(s3.list_object_versions(Bucket=artifacts_bucket, Prefix=first.key)["Versions"]) == 1
    assert artifacts.fetch(first) == data

    # The broken-copy test: someone overwrites the key with other bytes; the next publish of the
    # same build finds them, warns and uploads a new version, never reusing the broken one.
    s3.put_object(Bucket=artifacts_bucket, Key=first.key, Body=b"truncated")
    repaired = artifacts.publish(data, sha256="d" * 64, bucket=artifacts_bucket, prefix=PREFIX, kind="api", suffix=".zip")
    assert repaired.key == first.key and repaired.version not in (first.version,)
    assert artifacts.fetch(repaired) == data
    assert artifacts.fetch(first) == data  # the pinned version itself never changed
    broken_version = s3.list_object_versions(Bucket=artifacts_bucket, Prefix=first.key)["Versions"]
    [broken] = [v["VersionId"] for v in broken_version if v["VersionId"] not in (first.version, repaired.version)]
    with pytest.raises(PermanentError, match="is a broken copy"):
        artifacts.fetch(artifacts.Artifact(**{**first.line(), "version": broken}))


class _OldKeyRefused:
    """The local cloud's S3 client, except that reading `refused_version` is refused as S3 refuses
    an object under a key the caller may not use (moto enforces no KMS key policy)."""

    def __init__(self, client, refused_version: str):
        self._client, self._refused = client, refused_version

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_object(self, **kwargs):
        if kwargs.get("VersionId") == self._refused:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized: kms:Decrypt"}}, "GetObject")
        return self._client.get_object(**kwargs)


@pytest.mark.slow
def test_a_copy_under_a_key_the_role_may_not_use_is_uploaded_again(artifacts_bucket):
    """Objects a preview published before the artifacts bucket had its own key are under prod's
    state key, which a preview's role may no longer use: the next publish writes a new version
    (under the bucket's key) instead of failing, or pinning a version the deploy cannot read."""
    data = b"bundle written under the old key"
    old = artifacts.publish(data, sha256="d" * 64, bucket=artifacts_bucket, prefix=PREFIX, kind="api", suffix=".zip")
    client = _OldKeyRefused(boto3.client("s3"), old.version)
    renewed = artifacts.publish(data, sha256="d" * 64, bucket=artifacts_bucket, prefix=PREFIX, kind="api", suffix=".zip", client=client)
    assert renewed.key == old.key and renewed.version != old.version
    assert artifacts.fetch(renewed, client=client) == data


@pytest.mark.slow
def test_an_unversioned_bucket_is_refused(aws_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="unversioned-artifacts")
    with pytest.raises(PermanentError, match="is not versioned"):
        artifacts.publish(b"x", sha256="d" * 64, bucket="unversioned-artifacts", prefix=PREFIX, kind="api", suffix=".zip")


@pytest.mark.slow
def test_a_missing_bucket_says_who_creates_it(aws_env):
    with pytest.raises(PermanentError) as error:
        artifacts.publish(b"x", sha256="d" * 64, bucket=ARTIFACTS_BUCKET, prefix=PREFIX, kind="api", suffix=".zip")
    assert "does not exist" in str(error.value) and "prod's first `pulumi up` creates it" in error.value.hint


@pytest.mark.slow
def test_claims_newest_wins_and_absent_is_none(artifacts_bucket):
    where = {"bucket": artifacts_bucket, "prefix": PREFIX, "name": "pages-branch-pr-7"}
    assert artifacts.current_claim(**where) is None
    artifacts.put_claim(**where, claim="one")
    artifacts.put_claim(**where, claim="two")
    assert artifacts.current_claim(**where) == "two"
    assert artifacts.current_claim(**{**where, "prefix": "prod"}) is None


@pytest.mark.slow
def test_the_local_cloud_accepts_tls_clients_under_the_tls_only_policy(artifacts_bucket):
    """The program's bucket policy denies plain HTTP; the pipeline's clients use TLS, and the
    sandbox's moto_server treats them so (moto 5.2 alone would deny every request)."""
    from components.aws_policies import bucket_policy

    s3 = boto3.client("s3")
    policy = bucket_policy(f"arn:aws:s3:::{artifacts_bucket}", [])
    s3.put_bucket_policy(Bucket=artifacts_bucket, Policy=json.dumps(policy))
    record = artifacts.publish(b"bundle", sha256="d" * 64, bucket=artifacts_bucket, prefix=PREFIX, kind="api", suffix=".zip")
    assert artifacts.fetch(record) == b"bundle"
    # An unconditional Deny still applies.
    policy["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{artifacts_bucket}/*"})
    s3.put_bucket_policy(Bucket=artifacts_bucket, Policy=json.dumps(policy))
    with pytest.raises(Exception, match="AccessDenied|Access Denied|403"):
        artifacts.publish(b"other", sha256="d" * 64, bucket=artifacts_bucket, prefix=PREFIX, kind="api", suffix=".zip")
