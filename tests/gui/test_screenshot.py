"""A real window under Xvfb (xcb, not offscreen): every panel driven through its main flow with
the DevKit model and real data, one screenshot per panel saved to the test's tmp_path (and to
docs/screenshots/ with KWSGUI_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PyQt5.QtGui import QImage

REPO = Path(__file__).resolve().parents[2]
DOC_DIR = REPO / "docs" / "screenshots"
MAX_PNG_BYTES = 400_000
PANELS = ("live_view", "dataset", "collect", "browse", "keyword", "training", "models", "vad", "compile", "evaluate",
          "calibrate")


def colours(img: QImage, x0: int, x1: int, y0: int, y1: int) -> int:
    return len({img.pixel(x, y) for x in range(x0, x1, 7) for y in range(y0, y1, 7)})


def test_screenshots_of_every_panel(tmp_path, devkit, data_dir):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed (apt-get install xvfb xauth)")
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable,
           str(Path(__file__).with_name("screenshot_app.py")), str(tmp_path), str(tmp_path / "settings.ini"),
           str(devkit["featurizer"]), str(devkit["classifier"]), str(devkit["categories"]), str(data_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    log = proc.stdout + proc.stderr
    assert "Traceback" not in log, log
    assert proc.returncode == 0, log

    for name in PANELS:
        png = tmp_path / f"{name}.png"
        img = QImage(str(png))
        assert not img.isNull() and 1000 <= img.width() <= 1280 and 600 <= img.height() <= 800, \
            (name, img.width(), img.height())  # the window fits the 1280x800 screen
        assert png.stat().st_size < MAX_PNG_BYTES, name
        assert colours(img, 150, img.width() - 20, 100, img.height() - 60) > 40, name  # drawn, not blank
    live = QImage(str(tmp_path / "live_view.png"))
    assert colours(live, 200, 800, 150, 420) > 50  # the spectrogram is a picture
    if os.environ.get("KWSGUI_UPDATE_SCREENSHOTS"):  # refresh the README's pictures on request only
        DOC_DIR.mkdir(parents=True, exist_ok=True)
        for name in PANELS:
            shutil.copyfile(tmp_path / f"{name}.png", DOC_DIR / f"{name}.png")
    if shutil.which("import"):
        root = tmp_path / "live_view-root.png"
        assert root.is_file() and root.stat().st_size > 10_000
