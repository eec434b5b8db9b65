"""The local runner's offline packages (sandbox/runner_packages.py): each job gets PIP_NO_INDEX with
the wheelhouse, npm offline with a `~/.npm` of its own whose content is hard-linked from the cache
and whose index is a copy; an entry is named by what it is made from; a missing one says what to run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandbox import runner_packages

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The files the stores are made from (stack files, requirement files, the app's manifests)."""
    root = tmp_path / "project"
    for name in ("Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.preview.yaml", *runner_packages.REQUIREMENT_FILES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, root / name)
    for app in runner_packages.app_dirs(REPO):
        for manifest in runner_packages._npm_manifests(app):
            target = root / manifest.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(manifest, target)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return root


def _fake_npm_cache(root: Path) -> Path:
    cacache = runner_packages.npm_cache_dir(root) / "npm" / "_cacache"
    (cacache / "content-v2" / "sha512" / "ab").mkdir(parents=True)
    (cacache / "content-v2" / "sha512" / "ab" / "cdef").write_bytes(b"a package tarball")
    (cacache / "index-v5" / "12").mkdir(parents=True)
    (cacache / "index-v5" / "12" / "3456").write_text("key entry\n")
    return cacache


def test_a_job_installs_offline_from_the_stores_with_an_npm_cache_of_its_own(project: Path, tmp_path: Path) -> None:
    cacache = _fake_npm_cache(project)
    runner_packages.wheelhouse_dir(project).mkdir(parents=True)
    home = tmp_path / "home"
    env = runner_packages.job_environment(home, project)

    assert env == {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(runner_packages.wheelhouse_dir(project)), "npm_config_offline": "true"}
    content, index = home / ".npm/_cacache/content-v2/sha512/ab/cdef", home / ".npm/_cacache/index-v5/12/3456"
    assert content.read_bytes() == b"a package tarball" and content.stat().st_ino == (cacache / "content-v2/sha512/ab/cdef").stat().st_ino
    # npm appends to its index: the job's copy, never the store's.
    assert index.stat().st_ino != (cacache / "index-v5/12/3456").stat().st_ino
    with index.open("a") as fh:
        fh.write("written by a job\n")
    assert (cacache / "index-v5/12/3456").read_text() == "key entry\n"


def test_an_entry_is_named_by_what_it_is_made_from(project: Path) -> None:
    wheelhouse, npm_cache = runner_packages.wheelhouse_dir(project), runner_packages.npm_cache_dir(project)
    lockfile = runner_packages.app_dirs(project)[0] / "package-lock.json"
    lockfile.write_text(lockfile.read_text().replace('"lockfileVersion"', '"lockfileVersion" ', 1))
    assert runner_packages.npm_cache_dir(project) != npm_cache
    assert runner_packages.wheelhouse_dir(project) == wheelhouse
    requirements = project / "policy" / "requirements.txt"
    requirements.write_text(requirements.read_text() + "six==1.17.0\n")
    assert runner_packages.wheelhouse_dir(project) != wheelhouse


def test_a_missing_store_says_to_run_setup(project: Path, tmp_path: Path) -> None:
    with pytest.raises(runner_packages.RunnerPackagesError, match=r"wheelhouse .* is missing: run bash \.ci/setup"):
        runner_packages.job_environment(tmp_path / "home", project)
    runner_packages.wheelhouse_dir(project).mkdir(parents=True)
    with pytest.raises(runner_packages.RunnerPackagesError, match=r"npm cache .* is missing: run bash \.ci/setup"):
        runner_packages.job_environment(tmp_path / "home", project)
