"""Stand-ins of actions/upload-artifact v4.6.2 (ea165f8d65b6e75b540449e92b4886f43607fa02) and
actions/download-artifact v4.3.0 (d3f86a106a0bac45b974a628896c90dbdf5c8093): a store per workflow
run (WEBSTACK_RUNNER_ARTIFACTS, one directory per run, made by sandbox/workflow_runner.py), so
the jobs of one run share artifacts and another run sees none of them, as on GitHub.

upload (upstream src/upload/upload-artifact.ts, src/shared/search.ts): `path` lines are files,
directories or globs relative to the workspace (`!` excludes, hidden files left out unless
`include-hidden-files`); the files keep their paths below the paths' least common ancestor; no
file found is a warning (`if-no-files-found: warn`, default), an error or nothing; a second
artifact of the same name fails (409 Conflict) unless `overwrite: true`. Outputs `artifact-id`,
`artifact-url` and `artifact-digest`.

download (upstream src/download-artifact.ts): `name` downloads that artifact into `path` (an
unknown name fails: "Artifact 'X' not found"); otherwise every artifact, or those matching
`pattern`, each into `path/<name>`, or all into `path` with `merge-multiple`. Output
`download-path`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
from pathlib import Path

from sandbox.actions.toolkit import (
    ActionFailed,
    get_bool_input,
    get_input,
    get_multiline_input,
    info,
    runner_setting,
    set_output,
    warning,
    workspace,
)


def _store() -> Path:
    return Path(runner_setting("WEBSTACK_RUNNER_ARTIFACTS"))


def _search(patterns: list[str], root: Path, hidden: bool) -> tuple[list[Path], Path]:
    """The files to upload and the directory their stored paths are relative to (upstream's
    getMultiPathLCA over each search path's root: a directory itself, a file's or a glob's parent)."""
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:].strip() for p in patterns if p.startswith("!")]
    files: list[Path] = []
    roots: list[Path] = []
    for pattern in include:
        base = Path(os.path.expanduser(pattern))
        base = base if base.is_absolute() else root / base
        if any(c in pattern for c in "*?["):
            anchor = Path(base.anchor)
            matches = sorted(anchor.glob(str(base.relative_to(anchor))))
            literal = [part for part in base.parts if not any(c in part for c in "*?[")]
            roots.append(Path(*base.parts[: len(literal)]) if literal == list(base.parts[: len(literal)]) else root)
        else:
            matches = [base] if base.exists() else []
            roots.append(base if base.is_dir() else base.parent)
        for match in matches:
            files += [match] if match.is_file() else sorted(p for p in match.rglob("*") if p.is_file())
    files = [f for f in dict.fromkeys(f.resolve() for f in files)
             if not any(fnmatch.fnmatch(str(f), str((root / e).resolve())) for e in exclude)]  # fmt: skip
    if not files:
        return [], root
    common = Path(os.path.commonpath([str(r.resolve()) for r in roots]))
    if not hidden:  # hidden below the search root, as upstream's glob (hidden files excluded by default)
        files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(common).parts)]
    return files, common


def upload() -> None:
    name = get_input("name") or "artifact"
    patterns = get_multiline_input("path", required=True)
    files, common = _search(patterns, workspace(), get_bool_input("include-hidden-files"))
    if not files:
        mode = get_input("if-no-files-found") or "warn"
        message = f"No files were found with the provided path: {', '.join(patterns)}. No artifacts will be uploaded."
        if mode == "error":
            raise ActionFailed(message)
        if mode == "warn":
            warning(message)
        else:
            info(message)
        return
    target = _store() / name
    if target.exists():
        if not get_bool_input("overwrite"):
            raise ActionFailed(
                "Failed to CreateArtifact: Received non-retryable error: Failed request: (409) Conflict: an artifact "
                "with this name already exists on the workflow run"
            )
        shutil.rmtree(target)
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(common)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
        digest.update(str(relative).encode() + b"\0" + path.read_bytes())
    artifact_id = int(hashlib.sha256(f"{os.environ.get('GITHUB_RUN_ID')}/{name}".encode()).hexdigest()[:8], 16)
    (target.parent / f".{name}.json").write_text(json.dumps({"id": artifact_id, "files": len(files)}))
    info(f"Artifact {name} has been successfully uploaded! Final size is {sum(f.stat().st_size for f in files)} bytes. Artifact ID is {artifact_id}")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    set_output("artifact-id", str(artifact_id))
    set_output("artifact-url", f"{server}/{os.environ.get('GITHUB_REPOSITORY')}/actions/runs/{os.environ.get('GITHUB_RUN_ID')}/artifacts/{artifact_id}")
    set_output("artifact-digest", digest.hexdigest())


def download() -> None:
    name, pattern = get_input("name"), get_input("pattern")
    destination = Path(os.path.expanduser(get_input("path") or str(workspace())))
    destination = destination if destination.is_absolute() else workspace() / destination
    store = _store()
    available = sorted(p.name for p in store.iterdir() if p.is_dir()) if store.exists() else []
    if name:
        if name not in available:
            raise ActionFailed(f"Artifact '{name}' not found")
        chosen, merge = [name], True
    else:
        chosen = [a for a in available if not pattern or fnmatch.fnmatchcase(a, pattern)]
        merge = get_bool_input("merge-multiple")
        info(f"Filtering artifacts by pattern '{pattern}'" if pattern else
             "No input name, artifact-ids or pattern filtered specified, downloading all artifacts")  # fmt: skip
    for artifact in chosen:
        target = destination if merge else destination / artifact
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(store / artifact, target, dirs_exist_ok=True)
        info(f"Artifact download completed successfully: {artifact}")
    info(f"Total of {len(chosen)} artifact(s) downloaded")
    set_output("download-path", str(destination))


STAGES = {("upload-artifact", "main"): upload, ("download-artifact", "main"): download}
