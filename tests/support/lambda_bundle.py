"""Run `steps.build_lambda` the way the program's build Command does (tests only).

The Command runs in the API's directory with `PYTHONPATH` at the repo root and paths relative to
that directory (components/lambda_api.py); `build()` does the same and returns the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "app"
API = "apps/api"
ENTRY = "src/handler.ts"


def build(app: Path = APP, *, out: str | Path = "dist", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m steps.build_lambda --app-dir ../.. --entry src/handler.ts --out OUT` in app/apps/api."""
    api_dir = app / API
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.path.relpath(REPO, api_dir)
    return subprocess.run(
        [sys.executable, "-m", "steps.build_lambda", "--app-dir", os.path.relpath(app, api_dir),
         "--entry", ENTRY, "--out", str(out)],
        cwd=api_dir, env=child_env, capture_output=True, text=True, timeout=1200,
    )
