"""Stand-in of actions/setup-python v5.6.0 (a26af69be951a213d495a4c3e4e4022e16d87065): the Python
the workflow asks for, from this machine, or a failure, as upstream fails on a version it cannot
find. Nothing is downloaded.

Mirrors upstream's src/find-python.ts (useCpythonVersion): the version spec is matched against the
interpreters this machine has (`python3.X` on the runner's PATH), the newest match is put into the
tool cache layout (`$RUNNER_TOOL_CACHE/Python/<version>/x64`: an installation `pip install` may
write to, with `python`, `python3`, `python3.X` and pip, as the hosted tool cache's is) and that
directory and its `bin` go first on PATH; `pythonLocation`,
`Python_ROOT_DIR`, `Python2_ROOT_DIR`, `Python3_ROOT_DIR` and `PKG_CONFIG_PATH` are exported, and
the outputs `python-version` and `python-path` set. A version that is not here fails with
upstream's message. `cache: pip` is src/cache-distributions/pip-cache.ts: the pip cache directory
(`pip cache dir`) restored under
`setup-python-<RUNNER_OS>-<arch>-<os version>-<os name>-python-<version>-pip-<hash of
cache-dependency-path>`, restore key without the hash, and saved in the post step unless the
primary key was hit (src/cache-save.ts).
"""

from __future__ import annotations

import os
import re
import subprocess  # the interpreters, with list argv  # nosec B404
from pathlib import Path

from sandbox.actions import cache
from sandbox.actions.toolkit import (
    ActionFailed,
    add_path,
    export_variable,
    get_input,
    hash_files,
    info,
    set_output,
    workspace,
)

MANIFEST_URL = "https://raw.githubusercontent.com/actions/python-versions/main/versions-manifest.json"


def _interpreters() -> dict[str, Path]:
    """full version -> executable, for each python3.X on PATH (pyenv shims resolved to the real one)."""
    found: dict[str, Path] = {}
    seen: set[str] = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        for candidate in sorted(Path(directory).glob("python3.[0-9]*")) if directory else []:
            if not re.fullmatch(r"python3\.\d+", candidate.name) or candidate.name in seen:
                continue
            done = subprocess.run(  # noqa: S603  # nosec
                [str(candidate), "-c", "import sys, platform; print(platform.python_version()); print(sys.executable)"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode == 0 and len(done.stdout.split()) == 2:
                version, executable = done.stdout.split()
                seen.add(candidate.name)
                found.setdefault(version, Path(executable))
    return found


def _matches(spec: str, version: str) -> bool:
    spec = spec.strip().removesuffix(".x")
    return version == spec or version.startswith(spec + ".")


def _os_info() -> tuple[str, str]:
    """(osVersion, osName) as upstream's getLinuxInfo reads them (lsb_release -r -s / -i -s)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            fields[key] = value.strip('"')
    except OSError:
        pass
    return fields.get("VERSION_ID", ""), fields.get("NAME", "Linux").split()[0]


def setup() -> None:
    spec = get_input("python-version")
    if not spec:
        version_file = get_input("python-version-file")
        if version_file:
            spec = (workspace() / version_file).read_text().strip().splitlines()[0]
    if not spec:
        raise ActionFailed("The `python-version` input is not set (the local stand-in does not guess one)")
    available = _interpreters()
    chosen = sorted((v for v in available if _matches(spec, v)), key=lambda v: [int(p) for p in re.findall(r"\d+", v)])
    if not chosen:
        raise ActionFailed(
            f"The version '{spec}' with architecture 'x64' was not found for this operating system.\n"
            f"The list of all available versions can be found here: {MANIFEST_URL}"
            f" (this machine has: {', '.join(sorted(available)) or 'none'})"
        )
    version = chosen[-1]
    executable = available[version]
    minor = ".".join(version.split(".")[:2])
    root = Path(os.environ.get("RUNNER_TOOL_CACHE") or "/opt/hostedtoolcache") / "Python" / version / "x64"
    bin_dir = root / "bin"
    if not (bin_dir / f"python{minor}").exists():
        # The tool cache's Python is an installation of its own, pip included, that `pip install`
        # may write to; a distribution's interpreter is not (Debian's refuses: PEP 668). A virtual
        # environment of the machine's interpreter is that: its own site-packages and pip.
        done = subprocess.run([str(executable), "-m", "venv", str(root)], capture_output=True, text=True, check=False)  # noqa: S603  # nosec
        if done.returncode != 0:
            raise ActionFailed(f"could not set up Python {version} from {executable}: {done.stderr.strip()[-300:]}")
    info(f"Successfully set up CPython ({version})")
    export_variable("pythonLocation", str(root))
    export_variable("PKG_CONFIG_PATH", str(root / "lib" / "pkgconfig"))
    for name in ("Python_ROOT_DIR", "Python2_ROOT_DIR", "Python3_ROOT_DIR"):
        export_variable(name, str(root))
    add_path(root)
    add_path(bin_dir)
    set_output("python-version", version)
    set_output("python-path", str(bin_dir / "python"))
    if get_input("cache") == "pip":
        _restore_pip_cache(version, bin_dir / "python")
    elif get_input("cache"):
        raise ActionFailed(f"Caching for '{get_input('cache')}' is not supported by the local stand-in")


def _restore_pip_cache(version: str, python: Path) -> None:
    patterns = [p.strip() for p in (get_input("cache-dependency-path") or "**/requirements.txt").split("\n") if p.strip()]
    digest = hash_files(patterns, workspace()) or hash_files(["**/pyproject.toml"], workspace())
    if not digest:
        raise ActionFailed(
            f"No file in {workspace()} matched to [{','.join(patterns)} or **/pyproject.toml], make sure you have "
            "checked out the target repository"
        )
    done = subprocess.run([str(python), "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False)  # noqa: S603  # nosec
    if done.returncode != 0 or not done.stdout.strip():
        raise ActionFailed(f"Could not get cache folder path for pip package manager: {done.stderr.strip()[-300:]}")
    os_version, os_name = _os_info()
    restore_key = f"setup-python-{os.environ.get('RUNNER_OS', 'Linux')}-x64-{os_version}-{os_name}-python-{version}-pip"
    cache.restore_tool_cache(f"{restore_key}-{digest}", [restore_key], [done.stdout.strip()])


def post() -> None:
    if get_input("cache"):
        cache.save_tool_cache()


STAGES = {("setup-python", "main"): setup, ("setup-python", "post"): post}
