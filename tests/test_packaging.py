"""The built wheel is the product: installed in a fresh venv it runs without the repository.

Only the editable install used to work, because the templates lived outside the
package. This builds the wheel, installs it into a new venv (its dependencies are
borrowed from the test venv through a .pth file, so nothing is downloaded twice) and
runs the commands an admin starts with, from a folder that holds only a config and
content.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "var", "public", "preview", ".*_cache", "__pycache__")

CONFIG = """\
[site]
title = "Packaged"
postal_address = "1 Main Street, Geneva"
base_url = "http://127.0.0.1:8080"
timezone = "Europe/Zurich"

[storage]
url = "sqlite:///var/publisher.db"

[[categories]]
slug = "news"
title = "News"
labels = ["News"]

[[sources]]
name = "sample"
type = "directory"
path = "content"

[[lists]]
slug = "weekly"
name = "Weekly digest"
sender = "News <news@example.org>"
max_age = "36500d"
"""

ITEM = """\
---
title: Packaged news
date: 2020-07-15
category: News
link: https://www.example.org/news/packaged
---
It runs from the wheel.
"""


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_wheel_runs_check_build_and_preview_outside_the_repository(tmp_path: Path) -> None:
    # Build from a clean copy: setuptools would reuse a build/ folder left in the work tree.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    dist = tmp_path / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], tmp_path
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("publisher-*.whl")

    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path).returncode == 0
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
    (Path(purelib.stdout.strip()) / "test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    installed = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        tmp_path,
    )
    assert installed.returncode == 0, installed.stderr

    site_dir = tmp_path / "site"
    (site_dir / "content").mkdir(parents=True)
    (site_dir / "config.toml").write_text(CONFIG)
    (site_dir / "content" / "packaged.md").write_text(ITEM)
    publisher = str(venv / "bin" / "publisher")

    where = run([str(python), "-c", "import publisher; print(publisher.__file__)"], site_dir)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel, not the repository

    for command in (["check"], ["ingest"], ["build"], ["digest", "preview", "weekly", "--out", "preview"]):
        result = run([publisher, *command], site_dir)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert "Packaged news" in (site_dir / "public" / "feeds" / "all.atom.xml").read_text()
    assert "Packaged news" in (site_dir / "public" / "index.html").read_text()
    assert "Packaged news" in (site_dir / "preview" / "weekly.html").read_text()
