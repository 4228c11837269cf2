"""Launch main.py offscreen as a user would and fail on any traceback or non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_main(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    return subprocess.run([sys.executable, str(REPO / "main.py"), "--quit-after", "3", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=90)


def check(proc: subprocess.CompletedProcess) -> None:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == 0, out


def test_main_starts_plays_the_demo_and_quits(tmp_path):
    check(run_main(tmp_path, "--wav", str(REPO / "assets" / "demo.wav")))
    assert (tmp_path / "config" / "kwsgui" / "kwsgui.ini").is_file()  # settings were saved on close


def test_main_with_the_devkit_model(tmp_path):
    d = REPO.parent / "shared" / "data" / "ell_devkit_model"
    if not d.is_dir():
        pytest.skip(f"ELL DevKit model not found at {d}")
    check(run_main(tmp_path, "--featurizer", str(d / "featurizer.ell"),
                   "--classifier", str(d / "classifier.ell"), "--categories", str(d / "categories.txt"),
                   "--wav", str(REPO / "assets" / "demo.wav")))
