"""Run `steps.build_lambda` the way the program's build Command does (tests only).

The Command runs in the API's directory with `PYTHONPATH` at the repo root and paths relative to
that directory (components/lambda_api.py); `build()` does the same and returns the process. The
build publishes its zip (steps.artifacts): to the artifacts bucket in the moto at `aws`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.moto import aws_environment, ensure_artifacts_bucket

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "app"
API = "apps/api"
ENTRY = "src/handler.ts"


PREFIX = "previews/preview-pr-7"


def build(
    app: Path = APP, *, aws: str, out: str | Path = "dist", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m steps.build_lambda --app-dir ../.. --entry src/handler.ts --out OUT
    --artifacts-bucket B --artifacts-prefix P` in app/apps/api, publishing into the moto at `aws`."""
    api_dir = app / API
    bucket = ensure_artifacts_bucket(aws)
    child_env = {**os.environ, **aws_environment(aws), **(env or {})}
    child_env["PYTHONPATH"] = os.path.relpath(REPO, api_dir)
    return subprocess.run(
        [sys.executable, "-m", "steps.build_lambda", "--app-dir", os.path.relpath(app, api_dir),
         "--entry", ENTRY, "--out", str(out), "--artifacts-bucket", bucket, "--artifacts-prefix", PREFIX],
        cwd=api_dir, env=child_env, capture_output=True, text=True, timeout=1200,
    )


def handle(bundle: Path, path: str, environment: dict[str, str]) -> dict:
    """The bundle's handler called under node, with `environment` only and the function-URL event
    of GET `path` that the pre-traffic check sends (a framework's adapter reads all of it)."""
    from steps.promote import health_event

    script = (
        "const {pathToFileURL} = require('node:url');"
        "import(pathToFileURL(process.argv[1]).href).then(m => (m.handler ?? m.default.handler)(JSON.parse(process.argv[2])))"
        ".then(r => process.stdout.write(JSON.stringify(r)));"
    )
    result = subprocess.run(
        ["node", "-e", script, str(bundle), json.dumps(health_event(path=path))],
        env={"PATH": os.environ["PATH"], **environment}, capture_output=True, text=True, timeout=60, cwd=bundle.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
