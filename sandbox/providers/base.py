"""What both stand-in providers share: the gRPC server, the resource lifecycle, values and errors.

A stand-in provider is a `pulumi.provider.experimental.Provider` whose resource types are
`ResourceType` handlers, one per Pulumi type token. The base turns the engine's calls into
handler calls and keeps the rules every type follows:

* **State = inputs + computed.** Create/Update return the inputs as they arrived (secret flags
  kept, per top-level property) plus what the handler computed (ARNs, versions, URLs, ids).
* **Check** fills defaults and auto-names (`name-<7 hex>`, reusing the old name on updates, the
  way Pulumi's autonaming does), lists what it filled in the input `__defaults` (as the bridge
  does, pulumi-terraform-bridge pkg/tfbridge MakeTerraformInputs), and reports missing required
  properties and values the real provider's schema refuses as check failures.
* **Diff** compares the new inputs with the old state, property by property, ignoring computed
  outputs and `ignoreChanges`; an unknown new value counts as a change. A change of a property in
  the handler's `replace_on_change` set makes the engine replace the resource, **delete-first**
  when the handler's auto-named property (a name) was set by the program rather than filled in by
  Check: the bridge's rule (pulumi-terraform-bridge v3.136.0 pkg/tfbridge/provider.go Diff,
  schema.go nameRequiresDeleteBeforeReplace: two resources cannot hold one explicit name), so a
  forced replacement of a named function, role, table or bucket means a moment without it. A state
  written without `__defaults` is taken as auto-named (the bridge's rule too). A handler may
  compare a property its own way (`same`: the Lambda code is compared by the hash of its zip).
* **Preview**: Create and Update with `preview=True` touch nothing; outputs the handler cannot
  know yet are unknown: the engine's sentinel string `UNKNOWN` (the SDK's
  `PropertyValue.computed()` cannot be marshalled back to the engine).
* **Read** returns what the backing service holds now (`pulumi refresh`); an empty id tells the
  engine the resource is gone.
* **Delete** is idempotent: already gone is success.
* **Elided assets**: in Diff (old *and new* inputs), Update (olds), Read and Delete the engine
  sends assets and archives as a bare hash (empty unless something hashed them), which the SDK's
  `PropertyValue` cannot unmarshal. The servicer swaps them for a plain marker map on the way in
  and back for the original on the way out. Only Check and Create (and Update's news) carry the
  contents: a handler that must notice new contents derives an input from them in Check (Lambda:
  `sourceCodeHash`, the zip's hash) and Diff compares that.
* **Errors** reach the engine as one gRPC error with a one-line message (`ProviderError`), never
  as a Python traceback; an unexpected exception's traceback goes to stderr, which the engine
  keeps in its logs. Stdout carries only the port (anything printed later is sent to stderr).

The SDK's `server.main` is not used as is: its servicer wraps every error in a message that
carries the Python traceback, cannot unmarshal elided assets, and its `DiffConfig` mis-encodes
`changes` (a bool in an enum field: True reads as DIFF_NONE) and fails on detailed diffs. `serve`
runs the same gRPC server (same options, port on stdout) with a servicer subclass that fixes
these; the provider API (`Provider`, the request/response classes, `PropertyValue`) is the SDK's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
import grpc.aio
from google.protobuf import json_format, struct_pb2
from pulumi.provider.experimental import provider as p
from pulumi.provider.experimental.property_value import Computed, PropertyValue, ResourceReference
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime import proto, rpc
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import provider_pb2_grpc

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's wire value of an unknown (computed) property; what preview outputs carry."""


class ProviderError(Exception):
    """An error the engine shows as is: one line, with a gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(" ".join(str(message).split()))
        if code is not None:
            self.code = code


class NotFound(ProviderError):
    code = grpc.StatusCode.NOT_FOUND


# values ---------------------------------------------------------------------------------------


def plain(value: PropertyValue) -> Any:
    """A PropertyValue as plain Python data: secrets unwrapped, numbers as float, unknowns as UNKNOWN.

    Assets and archives stay `pulumi.Asset` / `pulumi.Archive` objects; a resource reference
    becomes its id (or URN when it has none)."""
    inner = value.value
    if isinstance(inner, Computed):
        return UNKNOWN
    if isinstance(inner, ResourceReference):
        return plain(inner.resource_id) if inner.resource_id is not None else inner.urn
    if isinstance(inner, Mapping):
        return {k: plain(v) for k, v in inner.items()}
    if isinstance(inner, tuple):
        return [plain(v) for v in inner]
    return inner


def plain_map(values: Mapping[str, PropertyValue]) -> dict[str, Any]:
    return {k: plain(v) for k, v in values.items()}


def wire(value: Any, secret: bool = False) -> PropertyValue:
    """Plain Python data as a PropertyValue (ints become numbers, tuples lists); `secret` marks the top."""
    if isinstance(value, PropertyValue):
        value = plain(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        out = PropertyValue(value)
    elif isinstance(value, (int, float)):
        out = PropertyValue(float(value))
    elif isinstance(value, Mapping):
        out = PropertyValue({str(k): wire(v) for k, v in value.items()})
    elif isinstance(value, (list, tuple)):
        out = PropertyValue([wire(v) for v in value])
    else:  # assets, archives
        out = PropertyValue(value)
    return out.with_secret(True) if secret else out


def is_unknown(value: Any) -> bool:
    """True when the value is, or contains, an unknown."""
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(is_unknown(v) for v in value)
    return False


def normalize(value: Any) -> Any:
    """Comparable form: integral floats as ints, empty collections as None, JSON documents parsed."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        items = {k: normalize(v) for k, v in value.items() if normalize(v) is not None}
        return items or None
    if isinstance(value, list):
        return [normalize(v) for v in value] or None
    if isinstance(value, str) and value[:1] in "{[" and value[-1:] in "}]":
        try:
            return normalize(json.loads(value))
        except ValueError:
            return value
    return value


def same_value(old: Any, new: Any) -> bool:
    return normalize(old) == normalize(new)


def as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def compact(**values: Any) -> dict[str, Any]:
    """Keyword arguments without the None ones (for boto3 calls)."""
    return {k: v for k, v in values.items() if v is not None}


def config_value(args: Mapping[str, PropertyValue], variables: Mapping[str, str], package: str, key: str) -> Any:
    """A provider config value from the Configure args, else the legacy `pkg:config:key` variables.

    The Python SDK sends non-string provider inputs JSON-encoded ("false", '{"tags": ...}'):
    those are decoded."""
    if key in args:
        value = plain(args[key])
    else:
        value = variables.get(f"{package}:config:{key}", variables.get(f"{package}:{key}"))
    if isinstance(value, str) and (value[:1] in ("{", "[") or value in ("true", "false")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# resource types ---------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a handler call gets besides its properties: the provider's clients and the URN's name."""

    provider: Any
    name: str
    urn: str


class ResourceType:
    """One resource type of a stand-in provider. Subclasses set the class attributes and override
    `create`, `update`, `read` and `delete`; the base handles values, diffs and previews."""

    pulumi_type: ClassVar[str]
    """The Pulumi type token, e.g. `aws:lambda/function:Function`."""
    replace_on_change: ClassVar[frozenset[str]] = frozenset()
    computed: ClassVar[frozenset[str]] = frozenset()
    """Outputs the provider computes; never compared by Diff."""
    filled_in: ClassVar[frozenset[str]] = frozenset()
    """Optional inputs the service fills in when the program leaves them out (a KMS key's default
    policy): no change while the program still leaves them out."""
    required: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[Mapping[str, Any]] = {}
    autoname: ClassVar[str | None] = None
    """The name property filled in by Check when the program leaves it out."""
    autoname_max: ClassVar[int] = 64

    # lifecycle, overridden per type ---------------------------------------------------------
    def create(self, ctx: Ctx, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create the resource; return its id and the computed outputs."""
        raise NotImplementedError

    def update(self, ctx: Ctx, rid: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        """Apply `changed` inputs; return the computed outputs."""
        raise ProviderError(f"{self.pulumi_type}: changing {sorted(changed)} in place is not supported by the stand-in")

    def read(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> dict[str, Any] | None:
        """The current state (inputs and computed) from the backing service, or None when it is gone."""
        return state

    def delete(self, ctx: Ctx, rid: str, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # previews, overridable ------------------------------------------------------------------
    def preview_create(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Computed outputs known before anything exists (ARNs made of known names); the rest unknown."""
        return {key: UNKNOWN for key in self.computed}

    def preview_update(self, olds: dict[str, Any], news: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        """Computed outputs after an update that has not happened: the old ones unless overridden."""
        return {key: olds[key] for key in self.computed if key in olds}

    # diffs, overridable ---------------------------------------------------------------------
    def same(self, key: str, old: Any, new: Any, olds: dict[str, Any], news: dict[str, Any]) -> bool:
        """Whether input `key` is unchanged; unknown new values are changes."""
        if is_unknown(new):
            return False
        if new is None and key in self.filled_in:
            return True
        return same_value(old, new)

    def check(self, news: dict[str, Any]) -> list[p.CheckFailure]:
        """Extra validation of known inputs."""
        return []

    def derived_inputs(self, news: dict[str, Any]) -> dict[str, Any]:
        """Inputs Check adds from the others (Check is the only call that sees asset contents)."""
        return {}


class StandInProvider(p.Provider):
    """Dispatches the engine's resource calls to the `ResourceType` handlers of `types`."""

    package: ClassVar[str]
    version: ClassVar[str]

    def __init__(self, types: Iterable[ResourceType], invokes: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None):
        self.types = {t.pulumi_type: t for t in types}
        self.invokes = dict(invokes or {})
        self.config: dict[str, Any] = {}

    # configuration --------------------------------------------------------------------------
    def configure_from(self, args: Mapping[str, PropertyValue], variables: Mapping[str, str]) -> None:
        """Read the provider config; subclasses override."""

    async def configure(self, request: p.ConfigureRequest) -> p.ConfigureResponse:
        self.configure_from(request.args, request.variables)
        # Outputs (values with dependencies) only matter to Construct and Call, which we do not serve.
        return p.ConfigureResponse(accept_secrets=True, supports_preview=True, accept_resources=True, accept_outputs=False)

    async def check_config(self, request: p.CheckRequest) -> p.CheckResponse:
        return p.CheckResponse(inputs=request.new_inputs)

    async def diff_config(self, request: p.DiffRequest) -> p.DiffResponse:
        olds = {k: v for k, v in plain_map(request.old_state).items() if k != "version"}
        news = {k: v for k, v in plain_map(request.new_inputs).items() if k != "version"}
        changed = sorted(k for k in set(olds) | set(news) if not same_value(olds.get(k), news.get(k)))
        return p.DiffResponse(changes=bool(changed), diffs=changed)

    async def get_schema(self, request: p.GetSchemaRequest) -> p.GetSchemaResponse:
        # The program brings its own SDK; the engine needs no more than the package identity.
        return p.GetSchemaResponse(schema=json.dumps({"name": self.package, "version": self.version}))

    # resources ------------------------------------------------------------------------------
    def handler(self, urn: str) -> ResourceType:
        # A child's URN type is qualified by its parents' types: `parent$child`.
        token = p._extract_type(urn).rsplit("$", 1)[-1]
        try:
            return self.types[token]
        except KeyError:
            raise ProviderError(
                f"the {self.package} stand-in provider does not implement {token} "
                f"(it covers {', '.join(sorted(self.types))})",
                grpc.StatusCode.UNIMPLEMENTED,
            ) from None

    def ctx(self, urn: str) -> Ctx:
        return Ctx(provider=self, name=p._extract_name(urn), urn=urn)

    async def check(self, request: p.CheckRequest) -> p.CheckResponse:
        handler = self.handler(request.urn)
        news = dict(request.new_inputs)
        news.pop(DEFAULTS, None)
        defaulted = []
        for key, value in handler.defaults.items():
            if key not in news or news[key].value is None:
                news[key] = wire(value)
                defaulted.append(key)
        if handler.autoname and (handler.autoname not in news or news[handler.autoname].value is None):
            old = request.old_inputs.get(handler.autoname)
            if old is not None and old.value is not None:
                news[handler.autoname] = old
            else:
                news[handler.autoname] = wire(autoname(request.name, request.random_seed, handler.autoname_max))
            defaulted.append(handler.autoname)
        news[DEFAULTS] = wire(sorted(defaulted))
        plain_news = plain_map(news)
        failures = [
            p.CheckFailure(key, f"missing required property '{key}'")
            for key in handler.required
            if plain_news.get(key) in (None, "", [], {})
        ]
        known = {k: v for k, v in plain_news.items() if not is_unknown(v)}
        failures += handler.check(known)
        for key, value in handler.derived_inputs(plain_news).items():
            news[key] = wire(value)
        return p.CheckResponse(inputs=news, failures=failures or None)

    async def diff(self, request: p.DiffRequest) -> p.DiffResponse:
        handler = self.handler(request.urn)
        olds = plain_map(request.old_state)
        news = plain_map(request.new_inputs)
        changed = changed_inputs(handler, olds, news, set(request.ignore_changes))
        replaces = sorted(changed & handler.replace_on_change)
        detailed = {}
        for key in changed:
            if key not in olds or olds[key] is None:
                kind = p.PropertyDiffKind.ADD_REPLACE if key in replaces else p.PropertyDiffKind.ADD
            elif key not in news or news[key] is None:
                kind = p.PropertyDiffKind.DELETE_REPLACE if key in replaces else p.PropertyDiffKind.DELETE
            else:
                kind = p.PropertyDiffKind.UPDATE_REPLACE if key in replaces else p.PropertyDiffKind.UPDATE
            detailed[key] = p.PropertyDiff(kind, input_diff=True)
        return p.DiffResponse(
            changes=bool(changed),
            replaces=replaces,
            diffs=sorted(changed),
            detailed_diff=detailed,
            delete_before_replace=bool(replaces) and named_explicitly(handler, news),
        )

    async def create(self, request: p.CreateRequest) -> p.CreateResponse:
        handler = self.handler(request.urn)
        inputs = plain_map(request.properties)
        inputs.pop(DEFAULTS, None)
        if request.preview:
            computed = handler.preview_create(inputs)
            return p.CreateResponse(resource_id="", properties=self._state(request.properties, inputs, computed))
        if is_unknown(inputs):
            raise ProviderError(f"{request.urn}: cannot create with unknown inputs outside a preview")
        what = f"creating {handler.pulumi_type} {p._extract_name(request.urn)!r}"
        rid, computed = await self._run(what, handler.create, self.ctx(request.urn), inputs)
        return p.CreateResponse(resource_id=rid, properties=self._state(request.properties, inputs, computed))

    async def update(self, request: p.UpdateRequest) -> p.UpdateResponse:
        handler = self.handler(request.urn)
        olds = plain_map(request.olds)
        news = plain_map(request.news)
        news.pop(DEFAULTS, None)
        changed = changed_inputs(handler, olds, news, set(request.ignore_changes))
        if request.preview:
            computed = handler.preview_update(olds, news, changed)
        else:
            what = f"updating {handler.pulumi_type} {request.resource_id!r}"
            computed = await self._run(what, handler.update, self.ctx(request.urn), request.resource_id, olds, news, changed)
        return p.UpdateResponse(properties=self._state(request.news, news, computed))

    async def read(self, request: p.ReadRequest) -> p.ReadResponse:
        handler = self.handler(request.urn)
        state = plain_map(request.properties)
        what = f"reading {handler.pulumi_type} {request.resource_id!r}"
        current = await self._run(what, handler.read, self.ctx(request.urn), request.resource_id, state)
        if current is None:
            return p.ReadResponse(resource_id="", properties={}, inputs={})
        secret = {k for k, v in request.properties.items() if v.contains_secret()}
        secret |= {k for k, v in request.inputs.items() if v.contains_secret()}
        properties = {k: wire(v, k in secret) for k, v in current.items()}
        # The inputs follow what the service holds now, so a refresh records drift in both.
        inputs = {k: wire(current.get(k, plain(v)), k in secret) for k, v in request.inputs.items()}
        return p.ReadResponse(resource_id=request.resource_id, properties=properties, inputs=inputs)

    async def delete(self, request: p.DeleteRequest) -> None:
        handler = self.handler(request.urn)
        what = f"deleting {handler.pulumi_type} {request.resource_id!r}"
        await self._run(what, handler.delete, self.ctx(request.urn), request.resource_id, plain_map(request.properties))

    async def invoke(self, request: p.InvokeRequest) -> p.InvokeResponse:
        fn = self.invokes.get(request.tok)
        if fn is None:
            raise ProviderError(
                f"the {self.package} stand-in provider does not implement the function {request.tok}",
                grpc.StatusCode.UNIMPLEMENTED,
            )
        result = await self._run(f"calling {request.tok}", fn, plain_map(request.args))
        return p.InvokeResponse(return_value={k: wire(v) for k, v in result.items()})

    # helpers ----------------------------------------------------------------------------------
    def describe_error(self, exc: Exception) -> str | None:
        """One line for an error of the backing service's client library; None = not one of those."""
        return None

    async def _run(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        # boto3 and urllib block: keep the gRPC event loop free for the engine's other calls.
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except ProviderError:
            raise
        except Exception as exc:
            described = self.describe_error(exc)
            if described is None:
                raise
            raise ProviderError(f"{what}: {described}") from exc

    @staticmethod
    def _state(inputs: Mapping[str, PropertyValue], plain_inputs: dict[str, Any], computed: dict[str, Any]) -> dict[str, PropertyValue]:
        """Inputs echoed with their secret flags (per top-level property), plus the computed outputs;
        `__defaults` stays an input only (the bridge returns the provider's state, without it)."""
        state = {k: wire(plain_inputs[k], v.contains_secret()) for k, v in inputs.items() if k != DEFAULTS}
        for key, value in computed.items():
            state[key] = wire(value, key in inputs and inputs[key].contains_secret())
        return state


DEFAULTS = "__defaults"
"""The input Check writes: which properties it filled in (the bridge's reserved key)."""


def named_explicitly(handler: ResourceType, news: Mapping[str, Any]) -> bool:
    """Whether the program set the name the provider could have generated (the bridge's
    nameRequiresDeleteBeforeReplace): then a replacement must delete first. No `__defaults`
    (a state from before it existed) counts as auto-named."""
    defaults = news.get(DEFAULTS)
    if not handler.autoname or not isinstance(defaults, list):
        return False
    return news.get(handler.autoname) is not None and handler.autoname not in defaults


def changed_inputs(handler: ResourceType, olds: dict[str, Any], news: dict[str, Any], ignore: set[str]) -> set[str]:
    keys = (set(news) | set(olds)) - handler.computed - ignore - {"id", "urn", DEFAULTS}
    return {key for key in keys if not handler.same(key, olds.get(key), news.get(key), olds, news)}


def autoname(name: str, seed: bytes, max_length: int = 64) -> str:
    """`<name>-<7 hex>`, Pulumi's auto-name, drawn from the engine's random seed (stable per resource)."""
    rng = random.Random(seed or os.urandom(16))  # nosec B311 - a name suffix, not a secret
    suffix = "".join(rng.choice("0123456789abcdef") for _ in range(7))
    return f"{name[: max(1, max_length - 8)]}-{suffix}"


# gRPC -------------------------------------------------------------------------------------------


def _root_cause(exc: BaseException) -> BaseException:
    """The exception a provider method raised, under the SDK wrapper that re-raises with a traceback."""
    seen = exc
    while type(seen) is Exception and seen.__context__ is not None:
        seen = seen.__context__
    return seen


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        return str(exc)
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


def _clean_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(self: StandInServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes one gRPC status
            root = _root_cause(exc)
            if not isinstance(root, ProviderError):
                traceback.print_exception(root, file=sys.stderr)
            code = root.code if isinstance(root, ProviderError) else grpc.StatusCode.UNKNOWN
            await context.abort(code, one_line(root))

    wrapper.__name__ = method.__name__
    return wrapper


ELIDED = "__standinElidedAsset"
"""Key of the plain map that stands for an asset or archive the engine sent without its contents."""
_ASSET_SIGS = {rpc._special_asset_sig, rpc._special_archive_sig}
_CONTENT_KEYS = {"path", "text", "uri", "assets"}


def _hide_elided(value: struct_pb2.Value) -> struct_pb2.Value:
    """Replace assets/archives sent as a bare hash (the engine elides old assets' contents in Diff,
    Update, Read and Delete) by a plain map the SDK can unmarshal, keeping the original for the way back."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        fields = value.struct_value.fields
        sig = fields.get(rpc._special_sig_key)
        if sig is not None and sig.string_value in _ASSET_SIGS and not (_CONTENT_KEYS & set(fields.keys())):
            marker = struct_pb2.Struct()
            marker.fields[ELIDED].string_value = json_format.MessageToJson(value)
            return struct_pb2.Value(struct_value=marker)
        out = struct_pb2.Struct()
        for key, item in fields.items():
            out.fields[key].CopyFrom(_hide_elided(item))
        return struct_pb2.Value(struct_value=out)
    if kind == "list_value":
        return struct_pb2.Value(list_value=struct_pb2.ListValue(values=[_hide_elided(v) for v in value.list_value.values]))
    return value


def _restore_elided(value: struct_pb2.Value) -> struct_pb2.Value:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        fields = value.struct_value.fields
        if set(fields.keys()) == {ELIDED}:
            return json_format.Parse(fields[ELIDED].string_value, struct_pb2.Value())
        out = struct_pb2.Struct()
        for key, item in fields.items():
            out.fields[key].CopyFrom(_restore_elided(item))
        return struct_pb2.Value(struct_value=out)
    if kind == "list_value":
        return struct_pb2.Value(list_value=struct_pb2.ListValue(values=[_restore_elided(v) for v in value.list_value.values]))
    return value


def _map_struct(struct: struct_pb2.Struct, fn: Callable[[struct_pb2.Value], struct_pb2.Value]) -> struct_pb2.Struct:
    return fn(struct_pb2.Value(struct_value=struct)).struct_value


def _with_elided_assets(method: Callable[..., Any], request_fields: tuple[str, ...], response_fields: tuple[str, ...]) -> Callable[..., Any]:
    async def wrapper(self: StandInServicer, request: Any, context: Any) -> Any:
        request = type(request).FromString(request.SerializeToString())
        for name in request_fields:
            getattr(request, name).CopyFrom(_map_struct(getattr(request, name), _hide_elided))
        response = await method(self, request, context)
        for name in response_fields:
            getattr(response, name).CopyFrom(_map_struct(getattr(response, name), _restore_elided))
        return response

    wrapper.__name__ = method.__name__
    return wrapper


class StandInServicer(ProviderServicer):
    """The SDK's servicer with one-line errors, elided assets and a DiffConfig that encodes its answer correctly."""

    async def DiffConfig(self, request: Any, context: Any) -> proto.DiffResponse:
        resp = await self._provider.diff_config(
            p.DiffRequest(
                request.urn,
                request.id,
                PropertyValue.unmarshal_map(request.olds),
                PropertyValue.unmarshal_map(request.news),
                list(request.ignoreChanges),
            )
        )
        changes = proto.DiffResponse.DIFF_SOME if resp.changes else proto.DiffResponse.DIFF_NONE
        return proto.DiffResponse(
            replaces=resp.replaces,
            stables=resp.stables,
            deleteBeforeReplace=resp.delete_before_replace,
            changes=changes,
            diffs=resp.diffs,
        )


for _name, _requests, _responses in (
    ("Check", ("olds", "news"), ("inputs",)),
    ("Diff", ("olds", "news"), ()),
    ("Create", ("properties",), ("properties",)),
    ("Read", ("properties", "inputs"), ("properties", "inputs")),
    ("Update", ("olds", "news"), ("properties",)),
    ("Delete", ("properties",), ()),
):
    setattr(StandInServicer, _name, _with_elided_assets(getattr(StandInServicer, _name), _requests, _responses))
for _name in (
    "GetSchema", "CheckConfig", "DiffConfig", "Configure", "Invoke", "Check", "Diff",
    "Create", "Read", "Update", "Delete", "Parameterize",
):  # fmt: skip
    setattr(StandInServicer, _name, _clean_errors(getattr(StandInServicer, _name)))


def serve(provider: StandInProvider, argv: list[str] | None = None) -> None:
    """Serve `provider` as a Pulumi plugin: print the port on stdout, then answer gRPC until killed."""
    argv = sys.argv[1:] if argv is None else argv
    # Only the port goes to the real stdout; any later print (a library's, ours) lands on stderr.
    port_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    parser = argparse.ArgumentParser(prog=f"pulumi-resource-{provider.package}", description=__doc__.splitlines()[0])
    parser.add_argument("engine", nargs="?", default="", help="the engine's gRPC address")
    parser.add_argument("--logflow", action="store_true")
    parser.add_argument("--logtostderr", action="store_true")
    known, _ = parser.parse_known_args(argv)

    async def run() -> None:
        server = grpc.aio.server(options=_GRPC_CHANNEL_OPTIONS)
        servicer = StandInServicer(argv, provider.version, provider, engine_address=known.engine)
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_out.write(f"{port}\n")
        port_out.flush()
        await server.wait_for_termination()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass

