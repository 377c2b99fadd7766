"""When CI runs the image test: `.ci/run` in a throwaway clone of this repository, with a `make` on
PATH that only says what it was asked to do. The image test runs when the last commit changed what
goes into the image, when an earlier commit of the push did (the inputs differ from what
`.ci/image-tested` records as last passed), and not for a change to its docs alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mtlskit.config import paths

ROOT = paths.repo_root()


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """This commit's tree with this work tree's .ci/ and deploy/ (what is being tested), committed
    as the clone's main: CI's own situation, a clone of main whose origin/main is HEAD."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    repo = tmp_path / "repo"
    _git(tmp_path, "clone", "-q", "--no-hardlinks", str(ROOT), str(repo))
    for part in (".ci", "deploy"):
        shutil.rmtree(repo / part)
        shutil.copytree(ROOT / part, repo / part)
    shutil.copy(ROOT / ".dockerignore", repo / ".dockerignore")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "the tree under test")
    (repo / ".ci" / "image-tested").write_text(_inputs(repo))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "its image test passed")
    return repo


def _inputs(repo: Path) -> str:
    out = subprocess.run(
        [str(repo / "deploy/image-test/inputs.sh")], check=True, capture_output=True, text=True
    )
    return out.stdout


def _commit(repo: Path, path: str, line: str) -> None:
    with (repo / path).open("a") as f:
        f.write(line)
    _git(repo, "commit", "-qam", f"edit {path}")


def _ci(repo: Path, tmp_path: Path) -> list[str]:
    """What .ci/run asked make to do, with origin/main at HEAD as in a clone of main."""
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "make").write_text('#!/bin/sh\necho "make $*"\n')
    (fake / "make").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI_BASE", "MTLSKIT_IMAGE_TEST")}
    env["PATH"] = f"{fake}:{env['PATH']}"
    done = subprocess.run(["bash", ".ci/run"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(("make", "image test:"))]


def test_nothing_new_for_the_image_runs_make_test_alone(clone: Path, tmp_path: Path) -> None:
    _commit(clone, "deploy/README.md", "\nA note.\n")  # its docs do not go into the image
    said = _ci(clone, tmp_path)
    assert said[0].startswith("image test: skipped") and said[1:] == ["make test"]


def test_a_dockerfile_change_in_the_last_commit_runs_the_image_test(clone: Path, tmp_path: Path) -> None:
    _commit(clone, "deploy/Dockerfile", "# changed\n")
    said = _ci(clone, tmp_path)
    assert said[0].startswith("image test: changed since ") and said[0].endswith(": deploy/Dockerfile")
    assert said[1:] == [
        "make browser image-tools",
        "make test",
        "image test: base and image built beside make test (exit code 0):",
        "make image-prepare",  # in the background, its output shown once make test is done
        "make image-test",
    ]


def test_a_lock_change_in_an_earlier_commit_of_the_push_runs_the_image_test(
    clone: Path, tmp_path: Path
) -> None:
    _commit(clone, "deploy/requirements.lock", "# changed\n")
    _commit(clone, "README.md", "\nA note.\n")  # the last commit touches nothing of the image
    said = _ci(clone, tmp_path)
    assert said[0] == "image test: its inputs differ from what .ci/image-tested records as last passed"
    assert said[-1] == "make image-test"
