"""The package metadata ships what the code reads at run time, and the CLIs parse flags strictly."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_tracked_data_file_is_package_data():
    """A non-Python file inside elements/ or eval/ that git tracks must be listed as package data."""
    tracked = subprocess.run(
        ["git", "ls-files", "elements", "eval"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    if not tracked:  # not a git checkout (e.g. an sdist): nothing to compare against
        return
    data = _config()["tool"]["setuptools"]["package-data"]
    missing = []
    for f in tracked:
        if f.endswith((".py", ".pyi")):
            continue
        parts = Path(f).parts
        covered = False
        for depth in range(len(parts) - 1, 0, -1):
            package, rel = ".".join(parts[:depth]), "/".join(parts[depth:])
            if any(fnmatch.fnmatch(rel, pat) for pat in data.get(package, [])):
                covered = True
                break
        if not covered:
            missing.append(f)
    assert not missing, f"add these to [tool.setuptools.package-data]: {missing}"


def test_console_scripts_point_at_the_dispatchers():
    scripts = _config()["project"]["scripts"]
    assert scripts == {"elements": "elements.cli:main", "elements-eval": "eval.cli:main"}


def test_eval_help_from_another_folder(tmp_path):
    """``python -m eval --help`` works outside the repo root once the package is importable (as after pip install)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "eval", "--help"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "recon" in out.stdout and "metrics" in out.stdout


def test_space_front_matter_agrees_with_the_pins():
    """README's Hugging Face Space header: the gradio it names is the one pinned, a supported Python, a real app."""
    from huggingface_hub.repocard import metadata_load
    from packaging.specifiers import SpecifierSet

    meta = metadata_load(ROOT / "README.md")
    pins = dict(
        line.split("#")[0].strip().split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line.split("#")[0]
    )
    assert meta["sdk"] == "gradio" and str(meta["sdk_version"]) == pins["gradio"]
    python = str(meta["python_version"])
    assert python in SpecifierSet(_config()["project"]["requires-python"])
    assert f"(Python {python}," in (ROOT / "requirements.txt").read_text().splitlines()[0]  # what the pins install on
    assert (ROOT / meta["app_file"]).is_file() and "def main(" in (ROOT / meta["app_file"]).read_text()
