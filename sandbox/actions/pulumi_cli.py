"""Stand-in of pulumi/actions v7.0.0 (8e5e406f4007fca908480587cb9893c07090f58d) as the workflows use
it, with no `command`: install the CLI and put it on PATH (upstream's src/libs/pulumi-cli.ts
downloadCli: into ~/.pulumi/bin, added to PATH; output `pulumi-version`).

The CLI is this machine's engine (bin/, sandbox/engine.py), never a download: a pinned
`pulumi-version` (or `pulumi-version-file`) that is not the engine's version fails the step,
so a workflow cannot pin a CLI other than the one every real-engine test runs. The engine's
plugins go into the same directory, as the CLI would find a downloaded bundle and the plugins it
acquires: the Python language host, the command provider, and the local cloud's `aws` and
`cloudflare` providers (sandbox/bin).
"""

from __future__ import annotations

import os
import re
import subprocess  # the engine's CLI with list argv  # nosec B404
from pathlib import Path

from sandbox.actions.toolkit import ActionFailed, add_path, get_input, info, runner_setting, set_output, workspace

VERSION = re.compile(r"v?(\d+\.\d+\.\d+)")


def install() -> None:
    if get_input("command"):
        raise ActionFailed("the local stand-in of pulumi/actions installs the CLI only (no `command`)")
    engine = Path(runner_setting("WEBSTACK_ENGINE_BIN"))
    plugins = Path(runner_setting("WEBSTACK_STANDIN_PLUGINS"))
    done = subprocess.run([str(engine / "pulumi"), "version"], capture_output=True, text=True, check=False,  # noqa: S603  # nosec
                          env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"})  # fmt: skip
    match = VERSION.fullmatch(done.stdout.strip())
    if done.returncode != 0 or match is None:
        raise ActionFailed(f"the local engine at {engine / 'pulumi'} does not run: {done.stderr.strip()[-200:]}")
    engine_version = match.group(1)
    wanted = get_input("pulumi-version")
    if not wanted and get_input("pulumi-version-file"):
        wanted = (workspace() / get_input("pulumi-version-file")).read_text().strip()
    if wanted and wanted != "latest":
        pinned = VERSION.fullmatch(wanted.strip())
        if pinned is None:
            raise ActionFailed(f"pulumi-version {wanted!r} is not a version (x.y.z)")
        if pinned.group(1) != engine_version:
            raise ActionFailed(
                f"pulumi-version {pinned.group(1)} is pinned, but the engine every test runs is {engine_version} "
                "(bin/pulumi, sandbox/engine.py PULUMI_CLI_VERSION): pin that one in the workflow"
            )
    target = Path(os.environ.get("HOME") or Path.home()) / ".pulumi" / "bin"
    target.mkdir(parents=True, exist_ok=True)
    sources = [p for p in engine.iterdir() if p.name.startswith("pulumi") and p.is_file()]
    sources += [p for p in plugins.iterdir() if p.name.startswith("pulumi-resource-")]
    for source in sources:
        link = target / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source.resolve())
    add_path(target)
    info(f"Pulumi version {engine_version} is already installed on this machine. ({target})")
    set_output("pulumi-version", engine_version)


STAGES = {("pulumi", "main"): install}
