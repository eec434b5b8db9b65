"""The policy pack as the Pulumi engine talks to it: `policy/__main__.py` started as a process (it
prints its port and serves the Analyzer gRPC service), then Configure / Analyze / AnalyzeStack
requests carrying protobuf Structs, exactly the calls `pulumi preview --policy-pack` makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

PACK_DIR = Path(__file__).resolve().parents[2] / "policy"


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(value, default=str)), struct_pb2.Struct())


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    message: str
    urn: str


class Analyzer:
    """A running pack, reached over gRPC."""

    def __init__(self, stub: analyzer_pb2_grpc.AnalyzerStub):
        self.stub = stub

    def configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """The `--policy-pack-config` document: policy name -> its properties."""
        self.stub.Configure(
            analyzer_pb2.ConfigureAnalyzerRequest(
                policyConfig={
                    name: analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY, properties=_struct(props))
                    for name, props in config.items()
                }
            )
        )

    def analyze(self, resource: Any) -> list[Diagnostic]:
        """One resource (anything with type, props, urn, name, protect), as `Analyze` sees it."""
        response = self.stub.Analyze(
            analyzer_pb2.AnalyzeRequest(
                type=resource.type,
                properties=_struct(resource.props),
                urn=resource.urn,
                name=resource.name,
                options=analyzer_pb2.AnalyzerResourceOptions(protect=resource.protect),
            )
        )
        return [Diagnostic(d.policyName, d.message, d.urn) for d in response.diagnostics]

    def analyze_stack(self, resources: Sequence[Any]) -> list[Diagnostic]:
        response = self.stub.AnalyzeStack(
            analyzer_pb2.AnalyzeStackRequest(
                resources=[
                    analyzer_pb2.AnalyzerResource(
                        type=r.type,
                        properties=_struct(r.props),
                        urn=r.urn,
                        name=r.name,
                        options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect),
                        propertyDependencies={
                            key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
                            for key, urns in r.property_dependencies.items()
                        },
                    )
                    for r in resources
                ]
            )
        )
        return [Diagnostic(d.policyName, d.message, d.urn) for d in response.diagnostics]


@contextmanager
def running_pack() -> Iterator[Analyzer]:
    """Starts the pack the way the engine does (its `__main__.py`, which prints the port)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_CONFIG")}
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, the repo's own pack
            [sys.executable, str(PACK_DIR / "__main__.py")],
            cwd=PACK_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            line = process.stdout.readline().decode().strip() if process.stdout else ""
            if not line.isdigit():
                stderr.seek(0)
                raise RuntimeError(f"the pack did not start: {line!r}\n{stderr.read().decode(errors='replace')}")
            with grpc.insecure_channel(f"127.0.0.1:{line}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                yield Analyzer(analyzer_pb2_grpc.AnalyzerStub(channel))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
