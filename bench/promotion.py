"""Time from publishing a Lambda version to all of `stable`'s traffic on it: check only, and with a canary.

    python bench/promotion.py [--rounds 3] [--canary-seconds 10] [--canary-percent 10]

Starts `python -m sandbox.moto_server` and the local Lambda runtime (sandbox.lambda_runtime) on
free loopback ports, creates a function whose handler answers `/health` with its APP_VERSION (a
small hand-written handler, not the example app's bundle: the figure is about the promotion, not
the app's cold start), and per round: updates the code, publishes version N, runs the real
`python -m steps.promote check` against N, then either moves `stable` (UpdateAlias, what the
program's Alias resource does) or runs `python -m steps.promote canary` for the given seconds.
Prints each phase's wall time and the median per mode. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from sandbox.lambda_runtime import LambdaRuntime  # noqa: E402
from sandbox.moto_server import spawn, terminate  # noqa: E402

FUNCTION = "bench-promotion"
HANDLER = """
exports.handler = async () => ({ statusCode: 200, headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ status: 'ok', version: process.env.APP_VERSION, round: %d }) });
"""
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret-key", "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _zip(round_: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.js", HANDLER % round_)
    return buffer.getvalue()


def _step(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "steps.promote", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"steps.promote {args[0]} failed: {result.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--canary-seconds", type=float, default=10.0)
    parser.add_argument("--canary-percent", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-promotion-") as tmp:
        log = Path(tmp, "moto.log").open("wb")
        proc, endpoint = spawn(_free_port(), log)
        try:
            with LambdaRuntime(endpoint, log_path=Path(tmp, "runtime.log")):
                env = {**os.environ, **AWS, "AWS_ENDPOINT_URL": endpoint, "STEPS_SKIP_LOG": str(Path(tmp, "skips.jsonl"))}
                env.pop("ALERT_WEBHOOK_URL", None)
                client = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                                      aws_access_key_id="bench", aws_secret_access_key="bench-secret-key")  # fmt: skip
                trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
                role = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                                    aws_secret_access_key="bench-secret-key").create_role(
                    RoleName="bench-exec", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]  # fmt: skip
                client.create_function(FunctionName=FUNCTION, Runtime="nodejs20.x", Role=role, Handler="index.handler",
                                       Code={"ZipFile": _zip(0)}, Environment={"Variables": {"APP_VERSION": "build-0"}})  # fmt: skip
                first = client.publish_version(FunctionName=FUNCTION)["Version"]
                client.create_alias(FunctionName=FUNCTION, Name="stable", FunctionVersion=first)

                figures: dict[str, list[float]] = {"check only": [], "with canary": []}
                round_ = 0
                for mode in ("check only", "with canary"):
                    for _ in range(args.rounds):
                        round_ += 1
                        build = f"build-{round_}"
                        client.update_function_code(FunctionName=FUNCTION, ZipFile=_zip(round_))
                        client.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": {"APP_VERSION": build}})
                        started = time.perf_counter()
                        version = client.publish_version(FunctionName=FUNCTION)["Version"]
                        check = _step(env, "check", "--function", FUNCTION, "--qualifier", version, "--expect-version", build)
                        if mode == "check only":
                            client.update_alias(FunctionName=FUNCTION, Name="stable", FunctionVersion=version)
                            shift = 0.0
                        else:
                            shift = _step(env, "canary", "--function", FUNCTION, "--alias", "stable", "--version", version,
                                          "--weight", str(args.canary_percent), "--seconds", str(args.canary_seconds))  # fmt: skip
                        total = time.perf_counter() - started
                        assert client.get_alias(FunctionName=FUNCTION, Name="stable")["FunctionVersion"] == version
                        figures[mode].append(total)
                        print(f"{mode:12s} version {version:>2}: check {check:5.2f}s, canary {shift:5.2f}s, publish -> full traffic {total:5.2f}s")
                print()
                for mode, values in figures.items():
                    print(f"{mode:12s} median publish -> full traffic: {statistics.median(values):.2f}s over {len(values)} rounds")
                print(f"(canary: {args.canary_percent}% for {args.canary_seconds:g}s; production default 600 s)")
        finally:
            terminate(proc)
            log.close()


if __name__ == "__main__":
    main()
