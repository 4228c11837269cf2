"""A real window under Xvfb (xcb, not offscreen): play the demo with the DevKit model and save a
screenshot to the test's tmp_path (and to docs/screenshots/live_view.png with
KWSGUI_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PyQt5.QtGui import QImage

REPO = Path(__file__).resolve().parents[2]
DOC_PNG = REPO / "docs" / "screenshots" / "live_view.png"
MAX_PNG_BYTES = 300_000


def test_screenshot_of_the_live_view(tmp_path, devkit):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed (apt-get install xvfb xauth)")
    out = tmp_path / "live_view.png"
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, str(Path(__file__).with_name(
        "screenshot_app.py")), str(out), str(tmp_path / "settings.ini"),
        str(devkit["featurizer"]), str(devkit["classifier"]), str(devkit["categories"])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert "Traceback" not in log, log
    assert proc.returncode == 0, log

    img = QImage(str(out))
    assert not img.isNull() and img.width() >= 1000 and img.height() >= 600, (img.width(), img.height())
    # the spectrogram (left, upper half) is a picture, not a flat panel
    colours = {img.pixel(x, y) for x in range(100, 800, 7) for y in range(150, 450, 7)}
    assert len(colours) > 50
    assert out.stat().st_size < MAX_PNG_BYTES
    if os.environ.get("KWSGUI_UPDATE_SCREENSHOTS"):  # refresh the README's picture on request only
        DOC_PNG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, DOC_PNG)
    root = out.with_name("live_view-root.png")
    if shutil.which("import"):
        assert root.is_file() and root.stat().st_size > 10_000
