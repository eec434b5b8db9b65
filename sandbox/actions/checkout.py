"""Stand-in of actions/checkout v4.2.2 (11bd71901bbe5b1630ceea73d27597364c9af683): the commit under
test in a clean workspace, as on a new runner: no build outputs, no node_modules.

Mirrors upstream's src/git-source-provider.ts and src/ref-helper.ts: `git init` in the workspace,
`origin` = the repository (here the local runner's bare repository that stands in for GitHub,
WEBSTACK_GITHUB_GIT), then

- `fetch-depth: 1` (default): only the commit, under the ref's remote name
  (`+SHA:refs/remotes/origin/BRANCH`, `+SHA:refs/remotes/pull/N/merge`, or the bare SHA for
  `ref: <sha>`), `--depth=1`;
- `fetch-depth: 0`: every branch and tag (`+refs/heads/*:refs/remotes/origin/*`,
  `+refs/tags/*:refs/tags/*`), and the PR merge commit for a pull_request ref;

then a forced checkout: a branch as `-B BRANCH refs/remotes/origin/BRANCH`, anything else
detached. The ref and commit are the event's (GITHUB_REF, GITHUB_SHA: for pull_request the merge
commit) unless `ref` names another. Outputs `ref` and `commit`. With `persist-credentials: false`
no token is written into .git/config (nothing is written either way here: the local repository
needs none). Another `repository` than the run's is refused: this runner serves one repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # git with list argv  # nosec B404
from pathlib import Path

from sandbox.actions.toolkit import ActionFailed, get_input, info, runner_setting, set_output, workspace

SHA = re.compile(r"[0-9a-fA-F]{40}")


def _git(*args: str, cwd: Path) -> str:
    info(f"[command]git {' '.join(args)}")
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603,S607  # nosec
    if done.stdout.strip():
        info(done.stdout.rstrip())
    if done.returncode != 0:
        raise ActionFailed(f"The process 'git' failed with exit code {done.returncode}: {done.stderr.strip()[-400:]}")
    return done.stdout


def _refspecs(ref: str, sha: str) -> tuple[list[str], str]:
    """(the refspecs of a depth-1 fetch, what to check out), as ref-helper.ts getRefSpec/getCheckoutInfo."""
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        return [f"+{sha}:refs/remotes/origin/{branch}"], f"refs/remotes/origin/{branch}"
    if ref.startswith("refs/pull/"):
        remote = "refs/remotes/pull/" + ref.removeprefix("refs/pull/")
        return [f"+{sha}:{remote}"], remote
    if ref.startswith("refs/tags/"):
        return [f"+{sha}:{ref}"], ref
    return [sha], sha


def checkout() -> None:
    repository = get_input("repository") or os.environ.get("GITHUB_REPOSITORY", "")
    if repository.lower() != os.environ.get("GITHUB_REPOSITORY", "").lower():
        raise ActionFailed(f"repository {repository!r}: this runner serves only {os.environ.get('GITHUB_REPOSITORY')!r}")
    source = Path(runner_setting("WEBSTACK_GITHUB_GIT"))
    ref_input = get_input("ref")
    ref, sha = os.environ.get("GITHUB_REF", ""), os.environ.get("GITHUB_SHA", "")
    if ref_input:
        if SHA.fullmatch(ref_input):
            ref, sha = "", ref_input.lower()
        else:
            ref = ref_input if ref_input.startswith("refs/") else f"refs/heads/{ref_input}"
            sha = _git("rev-parse", f"{ref}^{{commit}}", cwd=source).strip()
    try:
        depth = int(get_input("fetch-depth") or "1")
    except ValueError:
        raise ActionFailed(f"fetch-depth must be a number, not {get_input('fetch-depth')!r}") from None
    target = workspace() / get_input("path")
    if target.exists():
        # A new runner's workspace is empty; upstream cleans a reused one (clean: true).
        for child in target.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    target.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", ".", cwd=target)
    _git("config", "--local", "gc.auto", "0", cwd=target)
    _git("remote", "add", "origin", str(source), cwd=target)
    refspecs, what = _refspecs(ref, sha) if ref else ([sha], sha)
    if depth <= 0:
        specs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        if not ref.startswith("refs/heads/") and not ref.startswith("refs/tags/"):
            specs += refspecs
        _git("-c", "protocol.version=2", "fetch", "--prune", "--no-recurse-submodules", "origin", *specs, cwd=target)
    else:
        _git("-c", "protocol.version=2", "fetch", "--no-tags", "--prune", "--no-recurse-submodules",
             f"--depth={depth}", "origin", *refspecs, cwd=target)  # fmt: skip
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        _git("checkout", "--progress", "--force", "-B", branch, what, cwd=target)
    else:
        _git("checkout", "--progress", "--force", what, cwd=target)
    commit = _git("rev-parse", "HEAD", cwd=target).strip()
    if sha and commit != sha:
        raise ActionFailed(f"checked out {commit}, expected {sha}")
    set_output("ref", ref)
    set_output("commit", commit)


STAGES = {("checkout", "main"): checkout}
