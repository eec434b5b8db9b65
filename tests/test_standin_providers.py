"""The stand-in `aws` and `cloudflare` provider plugins (sandbox/providers), driven over gRPC.

The slow tier starts each plugin the way the engine does (`sandbox/bin/pulumi-resource-*`, the
port read from its stdout), with moto_server and the Cloudflare API stand-in behind it, and calls
Configure/Check/Diff/Create/Read/Update/Delete/Invoke with `pulumi.runtime.proto` stubs. Every
outcome is checked where it lives (boto3 against moto, the stand-in's records), not only in what
the provider answers. The engine tier runs a small Pulumi project through the real CLI when
`bin/pulumi` has been built (`python -m sandbox.engine build`).
"""

from __future__ import annotations

import io
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import grpc
import pulumi
import pytest
from google.protobuf import empty_pb2
from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.runtime import proto
from pulumi.runtime.proto import provider_pb2_grpc

from sandbox.cloudflare_api import ACCOUNT, TOKEN, ZONE, CloudflareStub
from sandbox.providers import aws as aws_provider
from sandbox.providers import cloudflare as cloudflare_provider
from sandbox.providers.base import UNKNOWN, plain, wire
from tests.support.moto import ACCOUNT_ID, REGION, aws_environment, boto_kwargs, moto_server  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "sandbox" / "bin"
ENGINE = REPO / "bin"
URL_BASE = "http://127.0.0.1:9/lambda"
WRANGLER = "examples/app/node_modules/.bin/wrangler"
STARTUP_TIMEOUT = 60.0

FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


# a plugin process and a gRPC client -----------------------------------------------------------------


def urn(token: str, name: str, parent: str | None = None) -> str:
    qualified = f"{parent}${token}" if parent else token
    return f"urn:pulumi:test::standin::{qualified}::{name}"


def marshal(values: dict[str, Any]) -> Any:
    return PropertyValue.marshal_map({k: v if isinstance(v, PropertyValue) else wire(v) for k, v in values.items()})


def unmarshal(struct: Any) -> dict[str, Any]:
    return {k: plain(v) for k, v in PropertyValue.unmarshal_map(struct).items()}


class Plugin:
    """A provider plugin process started like the engine starts it, with a gRPC stub to it."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path, log: Path):
        self.log = log
        with log.open("wb") as stderr:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                [str(PLUGINS / f"pulumi-resource-{name}"), "127.0.0.1:1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        first = self._first_line()
        assert first.strip().isdigit(), f"stdout must carry the port, got {first!r}; stderr: {self.stderr()}"
        self.channel = grpc.insecure_channel(f"127.0.0.1:{int(first)}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def _first_line(self) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                return self.proc.stdout.readline().decode()
            if self.proc.poll() is not None:
                break
        pytest.fail(f"plugin printed no port: {self.stderr()}")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def close(self) -> bytes:
        """Stop the plugin; returns whatever it wrote to stdout after the port (must be nothing)."""
        self.channel.close()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            rest = self.proc.stdout.read()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            rest = b""
        return rest

    # calls --------------------------------------------------------------------------------------
    def info(self) -> str:
        return self.stub.GetPluginInfo(empty_pb2.Empty()).version

    def configure(self, **args: Any) -> Any:
        return self.stub.Configure(proto.ConfigureRequest(args=marshal(args), acceptSecrets=True, acceptResources=True))

    def check(self, resource_urn: str, news: dict[str, Any], olds: dict[str, Any] | None = None, seed: bytes = b"seed") -> tuple[dict[str, Any], list[tuple[str, str]]]:
        answer = self.stub.Check(
            proto.CheckRequest(urn=resource_urn, olds=marshal(olds or {}), news=marshal(news), randomSeed=seed)
        )
        return unmarshal(answer.inputs), [(f.property, f.reason) for f in answer.failures]

    def checked(self, resource_urn: str, news: dict[str, Any]) -> dict[str, Any]:
        inputs, failures = self.check(resource_urn, news)
        assert not failures, failures
        return inputs

    def create(self, resource_urn: str, inputs: dict[str, Any], preview: bool = False) -> tuple[str, dict[str, Any]]:
        answer = self.stub.Create(proto.CreateRequest(urn=resource_urn, properties=marshal(inputs), preview=preview))
        return answer.id, unmarshal(answer.properties)

    def create_raw(self, resource_urn: str, inputs: dict[str, Any]) -> tuple[str, dict[str, PropertyValue]]:
        answer = self.stub.Create(proto.CreateRequest(urn=resource_urn, properties=marshal(inputs)))
        return answer.id, PropertyValue.unmarshal_map(answer.properties)

    def diff(self, resource_urn: str, rid: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return self.stub.Diff(proto.DiffRequest(id=rid, urn=resource_urn, olds=marshal(olds), news=marshal(news)))

    def update(self, resource_urn: str, rid: str, olds: dict[str, Any], news: dict[str, Any], preview: bool = False) -> dict[str, Any]:
        answer = self.stub.Update(
            proto.UpdateRequest(id=rid, urn=resource_urn, olds=marshal(olds), news=marshal(news), preview=preview)
        )
        return unmarshal(answer.properties)

    def read(self, resource_urn: str, rid: str, state: dict[str, Any], inputs: dict[str, Any] | None = None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        answer = self.stub.Read(
            proto.ReadRequest(id=rid, urn=resource_urn, properties=marshal(state), inputs=marshal(inputs or {}))
        )
        return answer.id, unmarshal(answer.properties), unmarshal(answer.inputs)

    def delete(self, resource_urn: str, rid: str, state: dict[str, Any]) -> None:
        self.stub.Delete(proto.DeleteRequest(id=rid, urn=resource_urn, properties=marshal(state)))

    def invoke(self, token: str, **args: Any) -> dict[str, Any]:
        answer = self.stub.Invoke(proto.InvokeRequest(tok=token, args=marshal(args)))
        assert not answer.failures, answer.failures
        return unmarshal(getattr(answer, "return"))

    def lifecycle(self, token: str, name: str, news: dict[str, Any], parent: str | None = None) -> tuple[str, str, dict[str, Any]]:
        """Check + Create; returns (urn, id, state)."""
        resource_urn = urn(token, name, parent)
        rid, state = self.create(resource_urn, self.checked(resource_urn, news))
        assert rid
        return resource_urn, rid, state


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CLOUDFLARE_", "WEBSTACK_"))}
    return {**env, **extra}


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def assert_one_line(error: grpc.RpcError) -> str:
    details = error.details()
    assert details and "\n" not in details and "Traceback" not in details, details
    return details


# fast: the documented lists are the code's ---------------------------------------------------------


@pytest.mark.parametrize("module", [aws_provider, cloudflare_provider])
def test_docstring_table_of_replace_on_change_is_the_code(module: Any) -> None:
    documented = {
        m["token"]: set(m["props"].split(", "))
        for m in re.finditer(r"^  (?P<token>(?:aws|cloudflare):\S+): (?P<props>.+)$", module.__doc__, re.MULTILINE)
    }
    assert documented == {token: set(props) for token, props in module.REPLACE_ON_CHANGE.items()}


def test_aws_stand_in_covers_every_aws_type_the_program_declares(recorded: Any) -> None:
    covered = set(aws_provider.AwsProvider().types)
    declared = {
        r.type
        for stack in ("prod", "preview", "preview-pr-7")
        for r in recorded(stack).resources.values()
        if r.custom and r.type.startswith("aws:")
    }
    assert declared <= covered, sorted(declared - covered)
    assert covered == set(aws_provider.REPLACE_ON_CHANGE)


def test_cloudflare_stand_in_covers_every_cloudflare_type_the_program_declares(recorded: Any) -> None:
    covered = set(cloudflare_provider.CloudflareProvider().types)
    declared = {
        r.type
        for stack in ("prod", "preview", "preview-pr-7")
        for r in recorded(stack).resources.values()
        if r.custom and r.type.startswith("cloudflare:")
    }
    assert declared <= covered, sorted(declared - covered)


def test_function_url_shape() -> None:
    assert (
        aws_provider.function_url("http://127.0.0.1:9000/", "https://x.lambda-url.on.aws", "api-pr-7", None)
        == "http://127.0.0.1:9000/api-pr-7/%24LATEST/"
    )
    assert aws_provider.function_url("http://h:1", "u", "api", "stable") == "http://h:1/api/stable/"
    assert aws_provider.function_url(None, "https://x.lambda-url.us-east-1.on.aws", "api", None) == "https://x.lambda-url.us-east-1.on.aws/"


def test_code_zip_is_deterministic_and_holds_the_archive(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist/index.js").write_text("exports.handler = async () => 1;")
    archive = pulumi.AssetArchive(
        {"dist/index.js": pulumi.FileAsset(str(tmp_path / "dist/index.js")), "VERSION": pulumi.StringAsset("7")}
    )
    first = aws_provider.zip_archive(archive)
    time.sleep(1.1)
    assert aws_provider.zip_archive(archive) == first
    with zipfile.ZipFile(io.BytesIO(first)) as z:
        assert z.read("dist/index.js") == b"exports.handler = async () => 1;"
        assert z.read("VERSION") == b"7"


# slow: the plugins against moto and the Cloudflare stand-in -------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint(moto_server: str) -> str:
    """The session's moto_server (tests/support/moto.py); each test resets it."""
    return moto_server


@pytest.fixture
def moto(boto_kwargs: dict[str, str]) -> dict[str, Any]:
    """A reset moto and boto3 keyword arguments that reach it."""
    return boto_kwargs


@pytest.fixture(scope="module")
def aws_plugin(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    work = tmp_path_factory.mktemp("aws-plugin")
    env = _clean_env(**aws_environment(moto_endpoint), WEBSTACK_LAMBDA_URL_BASE=URL_BASE)
    plugin = Plugin("aws", env, work, work / "stderr.log")
    plugin.configure(region=REGION, skipCredentialsValidation="true", defaultTags='{"tags": {"stack": "test"}}')
    yield plugin
    assert plugin.close() == b"", "the plugin wrote to stdout after the port"


@pytest.fixture
def client(moto: dict[str, Any]) -> Any:
    def make(service: str) -> Any:
        return boto3.client(service, **moto)

    return make


def _code(tmp_path: Path, body: str) -> pulumi.AssetArchive:
    (tmp_path / "dist").mkdir(exist_ok=True)
    (tmp_path / "dist/index.js").write_text(body)
    return pulumi.AssetArchive({"dist/index.js": pulumi.FileAsset(str(tmp_path / "dist/index.js"))})


def _role(plugin: Plugin, name: str = "api-exec") -> str:
    _, _, state = plugin.lifecycle(ROLE, "role", {"name": name, "assumeRolePolicy": TRUST})
    return state["arn"]


@pytest.mark.slow
def test_plugins_report_the_pinned_sdk_versions(aws_plugin: Plugin, tmp_path: Path) -> None:
    assert aws_plugin.info() == "7.51.1"
    plugin = Plugin("cloudflare", _clean_env(), tmp_path, tmp_path / "stderr.log")
    try:
        assert plugin.info() == "6.23.1"
    finally:
        assert plugin.close() == b""


@pytest.mark.slow
def test_function_lifecycle_in_moto(aws_plugin: Plugin, client: Any, tmp_path: Path) -> None:
    lam = client("lambda")
    role_arn = _role(aws_plugin)
    assert client("iam").get_role(RoleName="api-exec")["Role"]["Arn"] == role_arn

    fn_urn = urn(FUNCTION, "api-function", parent="webstack:index:LambdaApi")
    news = {
        "name": "webstack-api-test",
        "role": role_arn,
        "runtime": "nodejs20.x",
        "handler": "dist/index.handler",
        "architectures": ["arm64"],
        "code": _code(tmp_path, "exports.handler = async () => 'one';"),
        "memorySize": 256,
        "timeout": 10,
        "publish": True,
        "environment": {"variables": {"STAGE": "test"}},
        "reservedConcurrentExecutions": 3,
    }
    inputs = aws_plugin.checked(fn_urn, news)
    rid, state = aws_plugin.create(fn_urn, inputs)
    assert rid == "webstack-api-test"

    config = lam.get_function_configuration(FunctionName=rid)
    zipped = aws_provider.zip_archive(news["code"])
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        assert z.read("dist/index.js") == b"exports.handler = async () => 'one';"
    assert config["CodeSha256"] == aws_provider.code_hash(zipped) == state["sourceCodeHash"]
    assert (config["MemorySize"], config["Timeout"], config["Architectures"]) == (256, 10, ["arm64"])
    assert config["Environment"]["Variables"] == {"STAGE": "test"}
    assert lam.list_tags(Resource=config["FunctionArn"])["Tags"] == {"stack": "test"}
    published = [v["Version"] for v in lam.list_versions_by_function(FunctionName=rid)["Versions"]]
    assert state["version"] == "1" and "1" in published
    assert state["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{rid}"
    assert state["qualifiedArn"] == state["arn"] + ":1"
    assert state["invokeArn"].endswith(f"/functions/{state['arn']}/invocations")
    assert state["lastModified"]

    # Same inputs: no diff. Memory: an update, no replacement, a new version.
    assert aws_plugin.diff(fn_urn, rid, state, inputs).changes == proto.DiffResponse.DIFF_NONE
    bigger = {**inputs, "memorySize": 512}
    diff = aws_plugin.diff(fn_urn, rid, state, bigger)
    assert diff.changes == proto.DiffResponse.DIFF_SOME
    assert list(diff.diffs) == ["memorySize"] and not diff.replaces
    state = aws_plugin.update(fn_urn, rid, state, bigger)
    assert lam.get_function_configuration(FunctionName=rid)["MemorySize"] == 512
    assert state["version"] == "2" and state["memorySize"] == 512
    assert lam.get_function_concurrency(FunctionName=rid)["ReservedConcurrentExecutions"] == 3

    # Reserved concurrency is a setting of its own: updated in place, no new version; -1 = unreserved.
    for reserved, expected in ((5, 5), (-1, None)):
        changed = {**bigger, "reservedConcurrentExecutions": reserved}
        assert list(aws_plugin.diff(fn_urn, rid, state, changed).diffs) == ["reservedConcurrentExecutions"]
        state = aws_plugin.update(fn_urn, rid, state, changed)
        assert lam.get_function_concurrency(FunctionName=rid).get("ReservedConcurrentExecutions") == expected
        assert state["version"] == "2"
    bigger = changed

    # The name forces a replacement, delete-first: the program set the name (the bridge's rule).
    diff = aws_plugin.diff(fn_urn, rid, state, {**bigger, "name": "webstack-api-other"})
    assert list(diff.replaces) == ["name"] and diff.deleteBeforeReplace

    # Rebuilt code at the same path is a code change; the update ships it and publishes.
    rebuilt = aws_plugin.checked(fn_urn, {**bigger, "code": _code(tmp_path, "exports.handler = async () => 'two';")})
    assert list(aws_plugin.diff(fn_urn, rid, state, rebuilt).diffs) == ["code"]
    before = state["lastModified"]
    state = aws_plugin.update(fn_urn, rid, state, rebuilt)
    config = lam.get_function_configuration(FunctionName=rid)
    assert config["CodeSha256"] == aws_provider.code_hash(aws_provider.zip_archive(rebuilt["code"])) == state["codeSha256"]
    assert state["version"] == "3" and state["lastModified"] > before
    assert lam.get_function_configuration(FunctionName=rid, Qualifier="3")["CodeSha256"] == config["CodeSha256"]

    # Out-of-band change: refresh sees it, in the state and in the inputs.
    lam.update_function_configuration(FunctionName=rid, MemorySize=1024, Environment={"Variables": {"STAGE": "hand"}})
    read_id, current, current_inputs = aws_plugin.read(fn_urn, rid, state, rebuilt)
    assert read_id == rid
    assert current["memorySize"] == 1024 and current_inputs["memorySize"] == 1024
    assert current["environment"] == {"variables": {"STAGE": "hand"}}
    assert aws_plugin.diff(fn_urn, rid, current, rebuilt).diffs == ["environment", "memorySize"]

    # Delete twice; the second is a success too. Read then says it is gone.
    aws_plugin.delete(fn_urn, rid, current)
    aws_plugin.delete(fn_urn, rid, current)
    with pytest.raises(botocore.exceptions.ClientError):
        lam.get_function(FunctionName=rid)
    assert aws_plugin.read(fn_urn, rid, current)[0] == ""


@pytest.mark.slow
def test_latest_function_alias_url_and_permissions(aws_plugin: Plugin, client: Any, tmp_path: Path) -> None:
    lam = client("lambda")
    role_arn = _role(aws_plugin)
    base = {"role": role_arn, "runtime": "nodejs20.x", "handler": "dist/index.handler", "code": _code(tmp_path, "1")}
    fn_urn, fn, state = aws_plugin.lifecycle(FUNCTION, "preview-fn", base)
    # No name given: auto-named from the resource name; not published: $LATEST.
    assert fn.startswith("preview-fn-") and len(fn) == len("preview-fn-") + 7
    assert state["version"] == "$LATEST" and state["qualifiedArn"].endswith(":$LATEST")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=fn)["Versions"]] == ["$LATEST"]
    # A re-check with the old inputs keeps the name (no replacement on the next up).
    again, _ = aws_plugin.check(fn_urn, base, olds=state)
    assert again["name"] == fn

    # A config change on $LATEST moves lastModified even though moto does not.
    updated = aws_plugin.update(fn_urn, fn, state, {**state, "timeout": 20})
    assert updated["lastModified"] > state["lastModified"] and updated["version"] == "$LATEST"
    assert lam.get_function_configuration(FunctionName=fn)["Timeout"] == 20

    version = lam.publish_version(FunctionName=fn)["Version"]
    alias_urn, alias_id, alias = aws_plugin.lifecycle(
        "aws:lambda/alias:Alias", "alias", {"name": "stable", "functionName": fn, "functionVersion": version}
    )
    assert lam.get_alias(FunctionName=fn, Name="stable")["FunctionVersion"] == version
    assert alias_id == alias["arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{fn}:stable"
    newer = lam.publish_version(FunctionName=fn)["Version"]
    assert newer != version
    alias = aws_plugin.update(alias_urn, alias_id, alias, {**alias, "functionVersion": newer})
    assert lam.get_alias(FunctionName=fn, Name="stable")["FunctionVersion"] == newer

    cors = {"allowOrigins": ["https://app.example.com"], "allowMethods": ["GET"], "maxAge": 300}
    url_urn, url_id, url = aws_plugin.lifecycle(
        "aws:lambda/functionUrl:FunctionUrl",
        "url",
        {"functionName": fn, "qualifier": "stable", "authorizationType": "NONE", "cors": cors},
    )
    assert url["functionUrl"] == f"{URL_BASE}/{fn}/stable/"
    stored = lam.get_function_url_config(FunctionName=fn, Qualifier="stable")
    assert stored["AuthType"] == "NONE" and stored["Cors"]["AllowOrigins"] == ["https://app.example.com"]
    latest_urn, latest_id, latest = aws_plugin.lifecycle(
        "aws:lambda/functionUrl:FunctionUrl", "latest-url", {"functionName": fn, "authorizationType": "NONE"}
    )
    assert latest["functionUrl"] == f"{URL_BASE}/{fn}/%24LATEST/"
    assert lam.get_function_url_config(FunctionName=fn)["AuthType"] == "NONE"
    assert list(aws_plugin.diff(url_urn, url_id, url, {**url, "qualifier": "other"}).replaces) == ["qualifier"]

    perm_urn, sid, perm = aws_plugin.lifecycle(
        "aws:lambda/permission:Permission",
        "url-invoke",
        {"function": fn, "qualifier": "stable", "action": "lambda:InvokeFunctionUrl", "principal": "*", "functionUrlAuthType": "NONE"},
    )
    statements = json.loads(lam.get_policy(FunctionName=fn, Qualifier="stable")["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == [sid]
    assert aws_plugin.diff(perm_urn, sid, perm, {**perm, "principal": "other"}).replaces == ["principal"]

    for resource_urn, rid, props in ((perm_urn, sid, perm), (url_urn, url_id, url), (latest_urn, latest_id, latest), (alias_urn, alias_id, alias)):
        aws_plugin.delete(resource_urn, rid, props)
        aws_plugin.delete(resource_urn, rid, props)
    assert lam.list_aliases(FunctionName=fn)["Aliases"] == []
    with pytest.raises(botocore.exceptions.ClientError):
        lam.get_function_url_config(FunctionName=fn, Qualifier="stable")


@pytest.mark.slow
def test_function_url_without_base_is_motos(moto: dict[str, Any], moto_endpoint: str, client: Any, tmp_path: Path) -> None:
    plugin = Plugin("aws", _clean_env(**aws_environment(moto_endpoint)), tmp_path, tmp_path / "stderr.log")
    try:
        plugin.configure(region=REGION)
        role_arn = _role(plugin)
        _, fn, _ = plugin.lifecycle(
            FUNCTION, "fn", {"name": "plain-url", "role": role_arn, "runtime": "nodejs20.x", "handler": "i.h", "code": _code(tmp_path, "1")}
        )
        _, _, url = plugin.lifecycle("aws:lambda/functionUrl:FunctionUrl", "url", {"functionName": fn, "authorizationType": "NONE"})
        moto_url = client("lambda").get_function_url_config(FunctionName=fn)["FunctionUrl"]
        assert url["functionUrl"] == moto_url.rstrip("/") + "/"
        assert url["urlId"] and url["urlId"] in moto_url
    finally:
        assert plugin.close() == b""


@pytest.mark.slow
def test_preview_create_touches_nothing(aws_plugin: Plugin, client: Any, tmp_path: Path) -> None:
    fn_urn = urn(FUNCTION, "fn")
    inputs = aws_plugin.checked(
        fn_urn,
        {"name": "never", "role": UNKNOWN, "runtime": "nodejs20.x", "handler": "i.h", "code": UNKNOWN, "publish": True},
    )
    rid, outputs = aws_plugin.create(fn_urn, inputs, preview=True)
    assert rid == ""
    assert outputs["name"] == "never" and outputs["version"] == UNKNOWN and outputs["arn"] == UNKNOWN
    bucket_urn = urn("aws:s3/bucket:Bucket", "b")
    aws_plugin.create(bucket_urn, aws_plugin.checked(bucket_urn, {"bucket": "never-bucket"}), preview=True)
    assert client("lambda").list_functions()["Functions"] == []
    assert client("s3").list_buckets()["Buckets"] == []
    assert client("iam").list_roles()["Roles"] == []
    # A preview of an update with unknown code: the version to come is unknown, nothing changes.
    real_role = _role(aws_plugin)
    _, fn, state = aws_plugin.lifecycle(
        FUNCTION, "real", {"name": "real", "role": real_role, "runtime": "nodejs20.x", "handler": "i.h", "code": _code(tmp_path, "1"), "publish": True}
    )
    diff = aws_plugin.diff(urn(FUNCTION, "real"), fn, state, {**state, "code": UNKNOWN})
    assert list(diff.diffs) == ["code"]
    previewed = aws_plugin.update(urn(FUNCTION, "real"), fn, state, {**state, "code": UNKNOWN}, preview=True)
    assert previewed["version"] == UNKNOWN
    assert [v["Version"] for v in client("lambda").list_versions_by_function(FunctionName=fn)["Versions"]] == ["$LATEST", "1"]


@pytest.mark.slow
def test_function_memory_and_timeout_are_checked_as_the_provider_does(aws_plugin: Plugin) -> None:
    """terraform-provider-aws function.go: memory_size IntBetween(128, 10240), timeout IntBetween(1, 900),
    refused in Check, so at preview, before anything is created."""
    fn_urn = urn(FUNCTION, "fn")
    base = {"name": "limits", "role": f"arn:aws:iam::{ACCOUNT_ID}:role/r", "runtime": "nodejs20.x", "handler": "i.h",
            "s3Bucket": "b", "s3Key": "k"}  # fmt: skip
    for change, failure in (
        ({"memorySize": 64}, ("memorySize", "expected memory_size to be in the range (128 - 10240), got 64")),
        ({"memorySize": 10**9}, ("memorySize", "expected memory_size to be in the range (128 - 10240), got 1000000000")),
        ({"timeout": 0}, ("timeout", "expected timeout to be in the range (1 - 900), got 0")),
        ({"timeout": 901}, ("timeout", "expected timeout to be in the range (1 - 900), got 901")),
    ):
        assert aws_plugin.check(fn_urn, {**base, **change})[1] == [failure]
    for fine in ({"memorySize": 128}, {"memorySize": 10240}, {"timeout": 1}, {"timeout": 900}, {}):
        assert aws_plugin.check(fn_urn, {**base, **fine})[1] == []


@pytest.mark.slow
def test_replacement_deletes_first_only_what_the_program_named(aws_plugin: Plugin) -> None:
    """pulumi-terraform-bridge nameRequiresDeleteBeforeReplace: a replacement deletes first when the
    auto-nameable property was set by the program (two resources cannot hold one name), not when
    the provider generated it, nor for a state written before `__defaults` existed."""
    fn_urn = urn(FUNCTION, "fn")
    base = {"role": f"arn:aws:iam::{ACCOUNT_ID}:role/r", "runtime": "nodejs20.x", "handler": "i.h", "s3Bucket": "b", "s3Key": "k"}
    named = aws_plugin.checked(fn_urn, {**base, "name": "webstack-api-prod"})
    generated = aws_plugin.checked(fn_urn, base)
    assert "name" not in named["__defaults"] and "name" in generated["__defaults"]
    assert generated["name"].startswith("fn-")
    for inputs, first in ((named, True), (generated, False)):
        state = {**inputs, "arn": "arn", "version": "$LATEST"}
        diff = aws_plugin.diff(fn_urn, inputs["name"], state, {**inputs, "packageType": "Image"})
        assert list(diff.replaces) == ["packageType"] and diff.deleteBeforeReplace is first
        assert not aws_plugin.diff(fn_urn, inputs["name"], state, {**inputs, "memorySize": 512}).deleteBeforeReplace
    legacy = {k: v for k, v in named.items() if k != "__defaults"}
    assert not aws_plugin.diff(fn_urn, "x", legacy, {**legacy, "packageType": "Image"}).deleteBeforeReplace


@pytest.mark.slow
def test_function_code_from_a_pinned_s3_object(aws_plugin: Plugin, client: Any) -> None:
    """What the program gives the function: a versioned S3 object. A configuration change leaves
    lastModified known in preview (terraform-provider-aws updateComputedAttributesOnPublish marks it
    new-computed on a code change only); another object is a code change."""
    s3, lam = client("s3"), client("lambda")
    s3.create_bucket(Bucket="artifacts")
    s3.put_bucket_versioning(Bucket="artifacts", VersioningConfiguration={"Status": "Enabled"})
    objects = {}
    for body in ("one", "two"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("dist/index.js", f"exports.handler = async () => '{body}';")
        objects[body] = (buffer.getvalue(), s3.put_object(Bucket="artifacts", Key=f"api/{body}.zip", Body=buffer.getvalue())["VersionId"])
    role_arn = _role(aws_plugin)
    fn_urn = urn(FUNCTION, "fn")
    code = {"s3Bucket": "artifacts", "s3Key": "api/one.zip", "s3ObjectVersion": objects["one"][1]}
    inputs = aws_plugin.checked(fn_urn, {"name": "from-s3", "role": role_arn, "runtime": "nodejs20.x", "handler": "dist/index.handler", **code})
    rid, state = aws_plugin.create(fn_urn, inputs)
    assert lam.get_function_configuration(FunctionName=rid)["CodeSha256"] == aws_provider.code_hash(objects["one"][0])

    config_only = {**inputs, "memorySize": 512}
    assert list(aws_plugin.diff(fn_urn, rid, state, config_only).diffs) == ["memorySize"]
    previewed = aws_plugin.update(fn_urn, rid, state, config_only, preview=True)
    assert previewed["lastModified"] == state["lastModified"]  # known: no code change
    other_code = {**inputs, "s3Key": "api/two.zip", "s3ObjectVersion": objects["two"][1]}
    assert sorted(aws_plugin.diff(fn_urn, rid, state, other_code).diffs) == ["s3Key", "s3ObjectVersion"]
    assert aws_plugin.update(fn_urn, rid, state, other_code, preview=True)["lastModified"] == UNKNOWN
    state = aws_plugin.update(fn_urn, rid, state, other_code)
    assert lam.get_function_configuration(FunctionName=rid)["CodeSha256"] == aws_provider.code_hash(objects["two"][0])


@pytest.mark.slow
def test_secret_inputs_stay_secret(aws_plugin: Plugin, client: Any, tmp_path: Path) -> None:
    role_arn = _role(aws_plugin)
    secret_env = PropertyValue({"variables": PropertyValue({"DATABASE_URL": PropertyValue("postgres://u:pw@h/db").with_secret(True)})})
    fn_urn = urn(FUNCTION, "fn")
    rid, outputs = aws_plugin.create_raw(
        fn_urn,
        {"name": "secretive", "role": role_arn, "runtime": "nodejs20.x", "handler": "i.h", "code": _code(tmp_path, "1"), "environment": secret_env},
    )
    assert outputs["environment"].is_secret and not outputs["arn"].is_secret
    assert client("lambda").get_function_configuration(FunctionName=rid)["Environment"]["Variables"] == {
        "DATABASE_URL": "postgres://u:pw@h/db"
    }


@pytest.mark.slow
def test_errors_are_one_line(aws_plugin: Plugin, tmp_path: Path) -> None:
    fn_urn = urn(FUNCTION, "fn")
    inputs = aws_plugin.checked(
        fn_urn, {"name": "orphan", "role": f"arn:aws:iam::{ACCOUNT_ID}:role/missing", "runtime": "nodejs20.x", "handler": "i.h", "code": _code(tmp_path, "1")}
    )
    error = rpc_error(lambda: aws_plugin.create(fn_urn, inputs))
    details = assert_one_line(error)
    assert "creating aws:lambda/function:Function 'fn'" in details and "InvalidParameterValueException" in details

    error = rpc_error(lambda: aws_plugin.create(urn("aws:ec2/vpc:Vpc", "vpc"), {"cidrBlock": "10.0.0.0/16"}))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "does not implement aws:ec2/vpc:Vpc" in assert_one_line(error)

    _, failures = aws_plugin.check(urn(ROLE, "r"), {"name": "no-trust"})
    assert failures == [("assumeRolePolicy", "missing required property 'assumeRolePolicy'")]


@pytest.mark.slow
def test_no_endpoint_no_aws(tmp_path: Path) -> None:
    plugin = Plugin("aws", _clean_env(AWS_REGION=REGION), tmp_path, tmp_path / "stderr.log")
    try:
        plugin.configure(region=REGION)
        error = rpc_error(lambda: plugin.create(urn("aws:s3/bucket:Bucket", "b"), {"bucket": "x"}))
        assert "no endpoint for s3" in assert_one_line(error)
    finally:
        plugin.close()


@pytest.mark.slow
def test_endpoints_config_wins_over_env(moto: dict[str, Any], moto_endpoint: str, client: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in aws_environment(moto_endpoint).items() if k != "AWS_ENDPOINT_URL"}
    plugin = Plugin("aws", _clean_env(**env, AWS_ENDPOINT_URL="http://127.0.0.1:9"), tmp_path, tmp_path / "stderr.log")
    try:
        plugin.configure(region=REGION, endpoints=json.dumps([{"s3": moto_endpoint, "sts": moto_endpoint}]))
        plugin.lifecycle("aws:s3/bucket:Bucket", "b", {"bucket": "via-config"})
        assert [b["Name"] for b in client("s3").list_buckets()["Buckets"]] == ["via-config"]
        assert plugin.invoke("aws:index/getCallerIdentity:getCallerIdentity")["accountId"] == ACCOUNT_ID
    finally:
        assert plugin.close() == b""


@pytest.mark.slow
def test_account_foundation_in_moto(aws_plugin: Plugin, client: Any) -> None:
    """Every other type the program declares, with the program's shapes, created and deleted in moto."""
    created: list[tuple[str, str, dict[str, Any]]] = []

    def make(token: str, name: str, news: dict[str, Any]) -> dict[str, Any]:
        resource_urn, rid, state = aws_plugin.lifecycle(token, name, news)
        created.append((resource_urn, rid, state))
        return state

    kms, s3, iam = client("kms"), client("s3"), client("iam")
    key = make("aws:kms/key:Key", "key", {"description": "state", "enableKeyRotation": True, "deletionWindowInDays": 7})
    assert kms.get_key_rotation_status(KeyId=key["keyId"])["KeyRotationEnabled"]
    make("aws:kms/alias:Alias", "alias", {"name": "alias/webstack-test", "targetKeyId": key["keyId"]})
    assert "alias/webstack-test" in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]

    bucket = make("aws:s3/bucket:Bucket", "bucket", {"bucket": "webstack-state-test"})
    assert bucket["arn"] == "arn:aws:s3:::webstack-state-test"
    name = bucket["bucket"]
    make("aws:s3/bucketVersioning:BucketVersioning", "versioning", {"bucket": name, "versioningConfiguration": {"status": "Enabled"}})
    make(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "sse",
        {"bucket": name, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key["arn"]}, "bucketKeyEnabled": True}]},
    )
    make(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "pab",
        {"bucket": name, "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True},
    )
    make("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "own", {"bucket": name, "rule": {"objectOwnership": "BucketOwnerEnforced"}})
    policy = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [bucket["arn"], bucket["arn"] + "/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    )
    make("aws:s3/bucketPolicy:BucketPolicy", "policy", {"bucket": name, "policy": policy})
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key["arn"]
    assert s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"]
    assert s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    assert json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])["Statement"][0]["Effect"] == "Deny"

    table = make(
        "aws:dynamodb/table:Table",
        "locks",
        {
            "name": "webstack-locks-test",
            "billingMode": "PAY_PER_REQUEST",
            "hashKey": "LockID",
            "attributes": [{"name": "LockID", "type": "S"}],
            "pointInTimeRecovery": {"enabled": True},
            "serverSideEncryption": {"enabled": True, "kmsKeyArn": key["arn"]},
        },
    )
    described = client("dynamodb").describe_table(TableName="webstack-locks-test")["Table"]
    assert described["TableArn"] == table["arn"] and described["KeySchema"][0]["AttributeName"] == "LockID"

    oidc = make("aws:iam/openIdConnectProvider:OpenIdConnectProvider", "oidc", {"url": "https://token.actions.githubusercontent.com", "clientIdLists": ["sts.amazonaws.com"]})
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=oidc["arn"])["ClientIDList"] == ["sts.amazonaws.com"]
    role = make(
        ROLE,
        "deploy",
        {"name": "webstack-deploy-test", "assumeRolePolicy": TRUST, "maxSessionDuration": 3600, "inlinePolicies": [{"name": "logs", "policy": policy}]},
    )
    assert iam.list_role_policies(RoleName="webstack-deploy-test")["PolicyNames"] == ["logs"]
    make("aws:iam/rolePolicy:RolePolicy", "deploy-policy", {"role": role["name"], "policy": policy})
    make(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "attach",
        {"role": role["name"], "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
    )
    assert len(iam.list_role_policies(RoleName="webstack-deploy-test")["PolicyNames"]) == 2
    assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="webstack-deploy-test")["AttachedPolicies"]] == ["AWSLambdaBasicExecutionRole"]

    group = make("aws:cloudwatch/logGroup:LogGroup", "logs", {"name": "/aws/cloudtrail/test", "retentionInDays": 365, "kmsKeyId": key["arn"]})
    assert client("logs").describe_log_groups(logGroupNamePrefix="/aws/cloudtrail/test")["logGroups"][0]["retentionInDays"] == 365
    make(
        "aws:cloudwatch/logMetricFilter:LogMetricFilter",
        "filter",
        {"name": "Logins", "logGroupName": group["name"], "pattern": '{ $.eventName = "ConsoleLogin" }', "metricTransformation": {"name": "Logins", "namespace": "test", "value": "1", "defaultValue": "0"}},
    )
    assert client("logs").describe_metric_filters(logGroupName=group["name"])["metricFilters"][0]["filterName"] == "Logins"
    topic = make("aws:sns/topic:Topic", "alerts", {"name": "webstack-alerts-test", "kmsMasterKeyId": key["arn"]})
    assert client("sns").get_topic_attributes(TopicArn=topic["arn"])["Attributes"]["KmsMasterKeyId"] == key["arn"]
    make("aws:sns/topicSubscription:TopicSubscription", "mail", {"topicArn": topic["arn"], "protocol": "email", "endpoint": "ops@example.com"})
    assert client("sns").list_subscriptions_by_topic(TopicArn=topic["arn"])["Subscriptions"][0]["Endpoint"] == "ops@example.com"
    make(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "alarm",
        {"name": "logins", "comparisonOperator": "GreaterThanOrEqualToThreshold", "evaluationPeriods": 1, "metricName": "Logins", "namespace": "test", "period": 300, "statistic": "Sum", "threshold": 1, "alarmActions": [topic["arn"]]},
    )
    assert client("cloudwatch").describe_alarms(AlarmNames=["logins"])["MetricAlarms"][0]["AlarmActions"] == [topic["arn"]]
    trail = make(
        "aws:cloudtrail/trail:Trail",
        "trail",
        {"name": "webstack-audit-test", "s3BucketName": name, "isMultiRegionTrail": True, "enableLogFileValidation": True, "kmsKeyId": key["arn"]},
    )
    assert client("cloudtrail").get_trail_status(Name="webstack-audit-test")["IsLogging"]
    assert trail["arn"].endswith(":trail/webstack-audit-test")

    # Refresh reads moto: an out-of-band change to the role is seen.
    role_urn, role_id, role_state = next(c for c in created if c[1] == "webstack-deploy-test")
    iam.update_role(RoleName=role_id, MaxSessionDuration=7200)
    assert aws_plugin.read(role_urn, role_id, role_state)[1]["maxSessionDuration"] == 7200

    # Delete twice each, newest first; the key is only scheduled for deletion, versioning suspended.
    for resource_urn, rid, state in reversed(created):
        aws_plugin.delete(resource_urn, rid, state)
        if "BucketVersioning" in resource_urn:
            assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
            continue
        aws_plugin.delete(resource_urn, rid, state)
        assert aws_plugin.read(resource_urn, rid, state)[0] == "", f"{resource_urn} still there after delete"
    assert kms.describe_key(KeyId=key["keyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert iam.list_roles()["Roles"] == [] and s3.list_buckets()["Buckets"] == []


# Cloudflare --------------------------------------------------------------------------------------------


@pytest.fixture
def cf() -> Iterator[CloudflareStub]:
    with CloudflareStub(project=None) as stub:
        yield stub


@pytest.fixture
def cf_plugin(cf: CloudflareStub, tmp_path: Path) -> Iterator[Plugin]:
    plugin = Plugin("cloudflare", _clean_env(CLOUDFLARE_API_TOKEN=TOKEN), tmp_path, tmp_path / "stderr.log")
    plugin.configure(baseUrl=cf.api_base)
    yield plugin
    assert plugin.close() == b""


PAGES = "cloudflare:index/pagesProject:PagesProject"
DOMAIN = "cloudflare:index/pagesDomain:PagesDomain"
RECORD = "cloudflare:index/dnsRecord:DnsRecord"


@pytest.mark.slow
def test_pages_project_and_domain_in_the_stand_in(cf_plugin: Plugin, cf: CloudflareStub) -> None:
    project_urn, rid, project = cf_plugin.lifecycle(
        PAGES, "pages-project", {"accountId": ACCOUNT, "name": "webstack-site", "productionBranch": "main"}, parent="webstack:index:PagesProject"
    )
    assert rid == "webstack-site" and cf.projects == {"webstack-site": "main"}
    assert project["subdomain"] == "webstack-site.pages.dev"

    diff = cf_plugin.diff(project_urn, rid, project, {**project, "productionBranch": "release"})
    assert list(diff.diffs) == ["productionBranch"] and not diff.replaces
    project = cf_plugin.update(project_urn, rid, project, {**project, "productionBranch": "release"})
    assert cf.projects["webstack-site"] == "release"
    assert list(cf_plugin.diff(project_urn, rid, project, {**project, "name": "other"}).replaces) == ["name"]

    domain_urn, host, domain = cf_plugin.lifecycle(DOMAIN, "domain", {"accountId": ACCOUNT, "projectName": "webstack-site", "name": "app.example.com"})
    assert host == "app.example.com" and domain["status"] == "active" and domain["zoneTag"] == ZONE
    assert list(cf.domains["webstack-site"]) == ["app.example.com"]
    assert cf_plugin.diff(domain_urn, host, domain, {**domain, "name": "www.example.com"}).replaces == ["name"]

    cf.projects["webstack-site"] = "hotfix"  # out of band
    assert cf_plugin.read(project_urn, rid, project)[1]["productionBranch"] == "hotfix"

    for resource_urn, resource_id, state in ((domain_urn, host, domain), (project_urn, rid, project)):
        cf_plugin.delete(resource_urn, resource_id, state)
        cf_plugin.delete(resource_urn, resource_id, state)
    assert cf.projects == {} and "webstack-site" not in cf.domains
    assert cf_plugin.read(project_urn, rid, project)[0] == ""


def site_record(site: Path) -> str:
    """The record a site build prints for `site`: `--dir` holds exactly that tree, so the deploy
    never reads the (here absent) object."""
    from core.source_hash import output_hash

    sha = "0" * 64
    return json.dumps(
        {"sha256": output_hash(site), "bucket": "webstack-artifacts-123456789012", "key": f"previews/preview-pr-7/site/{sha}.tar.gz",
         "version": "v0", "object_sha256": sha}
    )  # fmt: skip


@pytest.mark.slow
def test_wrangler_deploys_into_the_project_the_provider_created(cf_plugin: Plugin, cf: CloudflareStub, tmp_path: Path) -> None:
    """The chain the program runs: the provider creates the project, the real deploy step (wrangler) fills it."""
    if not (REPO / WRANGLER).exists():
        pytest.fail(f"{WRANGLER} missing: install the workspace first (python -m steps.install --app-dir examples/app)")
    cf_plugin.lifecycle(PAGES, "pages-project", {"accountId": ACCOUNT, "name": "webstack-site", "productionBranch": "main"})
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>pr-7</html>")
    env = {
        **_clean_env(),
        "CLOUDFLARE_API_BASE_URL": cf.api_base,
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "STEPS_RETRY_SCALE": "0.01",
        "STEPS_SKIP_LOG": str(tmp_path / "skipped.jsonl"),
    }
    env = {k: v for k, v in env.items() if not k.startswith(("GITHUB_", "RUNNER_")) and k != "CI"}
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "steps.pages", "deploy", "--project", "webstack-site", "--branch", "pr-7",
         "--dir", str(site), "--artifact", site_record(site), "--app-dir", "examples/app"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [deployment] = cf.of_branch("pr-7")
    assert deployment.project == "webstack-site" and deployment.manifest == {"/index.html": deployment.manifest["/index.html"]}


@pytest.mark.slow
def test_dns_record_in_the_stand_in(cf_plugin: Plugin, cf: CloudflareStub) -> None:
    news = {"zoneId": ZONE, "name": "pr-7.app.example.com", "type": "CNAME", "content": "pr-7.webstack-site.pages.dev", "proxied": False, "ttl": 300, "comment": "managed"}
    record_urn, rid, record = cf_plugin.lifecycle(RECORD, "record", news)
    [stored] = cf.dns_records(name="pr-7.app.example.com")
    assert stored["id"] == rid and (stored["type"], stored["content"], stored["ttl"]) == ("CNAME", "pr-7.webstack-site.pages.dev", 300)
    assert cf_plugin.diff(record_urn, rid, record, news).changes == proto.DiffResponse.DIFF_NONE

    moved = {**record, "content": "other.pages.dev"}
    assert list(cf_plugin.diff(record_urn, rid, record, moved).diffs) == ["content"]
    record = cf_plugin.update(record_urn, rid, record, moved)
    assert cf.dns_records(name="pr-7.app.example.com")[0]["content"] == "other.pages.dev"
    assert list(cf_plugin.diff(record_urn, rid, record, {**record, "zoneId": "0" * 32}).replaces) == ["zoneId"]
    # terraform-provider-cloudflare v5: `type` RequiresReplace; pulumi-cloudflare sets no
    # auto-naming, so the replacement is create-before-delete.
    retyped = cf_plugin.diff(record_urn, rid, record, {**record, "type": "A", "content": "192.0.2.7"})
    assert list(retyped.replaces) == ["type"] and not retyped.deleteBeforeReplace

    # A second CNAME for the same name is refused by the API; the error is one line.
    error = rpc_error(lambda: cf_plugin.create(urn(RECORD, "dup"), {**news, "content": "x.pages.dev"}))
    assert "code 81053" in assert_one_line(error)

    cf.records[ZONE][rid]["ttl"] = 1  # out of band
    assert cf_plugin.read(record_urn, rid, record)[1]["ttl"] == 1
    zone = cf_plugin.invoke("cloudflare:index/getZone:getZone", zoneId=ZONE)
    assert zone["name"] == "example.com"

    cf_plugin.delete(record_urn, rid, record)
    cf_plugin.delete(record_urn, rid, record)
    assert cf.dns_records() == []


@pytest.mark.slow
def test_cloudflare_needs_a_base_url(tmp_path: Path) -> None:
    plugin = Plugin("cloudflare", _clean_env(CLOUDFLARE_API_TOKEN=TOKEN), tmp_path, tmp_path / "stderr.log")
    try:
        plugin.configure()
        error = rpc_error(lambda: plugin.create(urn(RECORD, "r"), {"zoneId": ZONE, "name": "a", "type": "A", "content": "1.2.3.4", "ttl": 1}))
        assert "no API base URL" in assert_one_line(error)
    finally:
        plugin.close()


@pytest.mark.slow
def test_cloudflare_api_runs_as_a_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "sandbox.cloudflare_api", "--zone", f"{ZONE}=example.org"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("CLOUDFLARE_API_BASE_URL=http://127.0.0.1:"), line
        base = line.split("=", 1)[1]
        import requests

        answer = requests.get(f"{base}/zones/{ZONE}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert answer["result"]["name"] == "example.org"
        assert requests.get(f"{base}/accounts/{ACCOUNT}/pages/projects", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()["result"] == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


# engine: the real CLI with both plugins ------------------------------------------------------------------

ENGINE_PROGRAM = '''
import pulumi
import pulumi_aws as aws
import pulumi_cloudflare as cloudflare
from pulumi_command import local

config = pulumi.Config()
provider = aws.Provider("aws", region="us-east-1", default_tags=aws.ProviderDefaultTagsArgs(tags={"stack": pulumi.get_stack()}))


class Api(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("test:index:Api", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role("role", name="engine-test-exec",
            assume_role_policy=%(trust)r, opts=child)
        aws.iam.RolePolicyAttachment("logs", role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", opts=child)
        # Like the program: a Command builds into the same path every time; its archive is the code.
        build = local.Command("build", create='mkdir -p dist && printf "%%s" "$BODY" > dist/index.js',
            environment={"BODY": config.get("body") or "v1"}, dir="app", archive_paths=["dist/**"], opts=child)
        self.fn = aws.lambda_.Function("fn", name="engine-test-api", role=role.arn, runtime="nodejs20.x",
            handler="dist/index.handler", code=build.archive,
            memory_size=config.get_int("memory") or 128, publish=True, opts=child)
        self.alias = aws.lambda_.Alias("alias", name="stable", function_name=self.fn.name,
            function_version=self.fn.version, opts=child)
        self.url = aws.lambda_.FunctionUrl("url", function_name=self.fn.name, qualifier=self.alias.name,
            authorization_type="NONE", opts=child)
        self.register_outputs({})


api = Api("api", opts=pulumi.ResourceOptions(providers=[provider]))
project = cloudflare.PagesProject("pages", account_id=%(account)r, name="engine-site", production_branch="main")
record = cloudflare.DnsRecord("record", zone_id=%(zone)r, name="engine.example.com", type="CNAME",
    content=project.subdomain, proxied=False, ttl=300)
pulumi.export("url", api.url.function_url)
pulumi.export("version", api.fn.version)
pulumi.export("aliasVersion", api.alias.function_version)
pulumi.export("subdomain", project.subdomain)
'''


def _pulumi(project: Path, env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - fixed argv
        [str(ENGINE / "pulumi"), *args, "--non-interactive"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"pulumi {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.mark.engine
@pytest.mark.skipif(not (ENGINE / "pulumi").exists(), reason="bin/pulumi not built (python -m sandbox.engine build)")
def test_engine_deploys_and_destroys_through_the_stand_ins(moto: dict[str, Any], moto_endpoint: str, client: Any, cf: CloudflareStub, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(
        "name: standin-engine-test\n"
        "runtime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {REPO / '.venv'}\n"
    )
    (project / "__main__.py").write_text(ENGINE_PROGRAM % {"trust": TRUST, "account": ACCOUNT, "zone": ZONE})
    state = tmp_path / "state"
    state.mkdir()
    venv_bin = REPO / ".venv" / "bin"
    env = _clean_env(
        **aws_environment(moto_endpoint),
        CLOUDFLARE_API_BASE_URL=cf.api_base,
        CLOUDFLARE_API_TOKEN=TOKEN,
        WEBSTACK_LAMBDA_URL_BASE=URL_BASE,
        PATH=os.pathsep.join([str(ENGINE), str(PLUGINS), str(venv_bin), os.environ.get("PATH", "")]),
        PULUMI_HOME=str(tmp_path / "pulumi-home"),
        PULUMI_BACKEND_URL=f"file://{state}",
        PULUMI_CONFIG_PASSPHRASE="engine-test",
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
    )
    env.pop("VIRTUAL_ENV", None)
    _pulumi(project, env, "stack", "init", "dev")

    up = _pulumi(project, env, "up", "--yes", "--skip-preview")
    outputs = json.loads(_pulumi(project, env, "stack", "output", "--json").stdout)
    lam = client("lambda")
    assert lam.get_function_configuration(FunctionName="engine-test-api")["MemorySize"] == 128
    assert outputs["version"] == "1" and outputs["aliasVersion"] == "1"
    assert lam.get_alias(FunctionName="engine-test-api", Name="stable")["FunctionVersion"] == "1"
    assert outputs["url"] == f"{URL_BASE}/engine-test-api/stable/"
    assert lam.get_function_url_config(FunctionName="engine-test-api", Qualifier="stable")["AuthType"] == "NONE"
    attached = client("iam").list_attached_role_policies(RoleName="engine-test-exec")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AWSLambdaBasicExecutionRole"]
    assert lam.list_tags(Resource=lam.get_function_configuration(FunctionName="engine-test-api")["FunctionArn"])["Tags"] == {"stack": "dev"}
    assert cf.projects == {"engine-site": "main"} and outputs["subdomain"] == "engine-site.pages.dev"
    [record] = cf.dns_records(name="engine.example.com")
    assert record["content"] == "engine-site.pages.dev"

    # A second up changes nothing: the stand-ins' diffs agree with their own state.
    again = _pulumi(project, env, "preview", "--diff", "--expect-no-changes")
    assert "engine-test-api" not in again.stdout or "~" not in again.stdout, again.stdout

    # A rebuild (same path, new bytes) and more memory: one update, version 2, the alias follows.
    first_code = lam.get_function_configuration(FunctionName="engine-test-api", Qualifier="1")["CodeSha256"]
    _pulumi(project, env, "config", "set", "body", "v2")
    _pulumi(project, env, "up", "--yes", "--skip-preview")
    assert json.loads(_pulumi(project, env, "stack", "output", "--json").stdout)["version"] == "2"
    second = lam.get_function_configuration(FunctionName="engine-test-api", Qualifier="2")
    assert second["CodeSha256"] != first_code
    assert (project / "app/dist/index.js").read_text() == "v2"
    _pulumi(project, env, "config", "set", "memory", "256")
    _pulumi(project, env, "up", "--yes", "--skip-preview")
    outputs = json.loads(_pulumi(project, env, "stack", "output", "--json").stdout)
    assert outputs["version"] == "3" == lam.get_alias(FunctionName="engine-test-api", Name="stable")["FunctionVersion"]
    third = lam.get_function_configuration(FunctionName="engine-test-api", Qualifier="3")
    assert third["MemorySize"] == 256 and third["CodeSha256"] == second["CodeSha256"]

    # Drift made out of band is seen by refresh.
    lam.update_function_configuration(FunctionName="engine-test-api", MemorySize=1024)
    _pulumi(project, env, "refresh", "--yes", "--skip-preview")
    exported = json.loads(_pulumi(project, env, "stack", "export").stdout)
    [fn_state] = [r for r in exported["deployment"]["resources"] if r["type"] == "aws:lambda/function:Function"]
    assert fn_state["outputs"]["memorySize"] == 1024

    _pulumi(project, env, "destroy", "--yes", "--skip-preview")
    with pytest.raises(botocore.exceptions.ClientError):
        lam.get_function(FunctionName="engine-test-api")
    assert client("iam").list_roles()["Roles"] == []
    assert cf.projects == {} and cf.dns_records() == []
    assert "error" not in up.stderr.lower()
