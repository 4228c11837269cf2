"""GUI test setup: offscreen Qt (set before anything imports Qt), isolated settings, models."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # must precede the first Qt import

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PyQt5.QtCore import QSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory):
    """No test reads or writes the user's real kwsgui settings."""
    d = tmp_path_factory.mktemp("settings")
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(d))
    QSettings.setPath(QSettings.NativeFormat, QSettings.UserScope, str(d))
    yield


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "kwsgui.ini"), QSettings.IniFormat)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data from the repo root: real clips and models, read in place, never copied."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (../shared/data from the repo root)")
    return SHARED_DATA


@pytest.fixture
def devkit(data_dir: Path) -> dict[str, Path]:
    """The real ELL DevKit model (featurizer.ell, classifier.ell, categories.txt)."""
    d = data_dir / "ell_devkit_model"
    paths = {k: d / f for k, f in (("featurizer", "featurizer.ell"), ("classifier", "classifier.ell"),
                                   ("categories", "categories.txt"))}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"ELL DevKit model files not found: {', '.join(missing)}")
    return paths


@pytest.fixture
def view(qtbot, settings):
    from kwsgui.live_view import LiveView

    w = LiveView(settings=settings)
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


@pytest.fixture
def devkit_view(view, devkit):
    """The live view with the DevKit featurizer, classifier and categories loaded."""
    for load, key in ((view.load_featurizer, "featurizer"), (view.load_classifier, "classifier"),
                      (view.load_categories, "categories")):
        assert load(devkit[key]), view.error_label.text()
    return view


@pytest.fixture
def open_panel(qtbot, settings, devkit_view):
    """Factory: a panel class -> the shown panel bound to the DevKit live view (shut down after)."""
    panels = []

    def make(cls, width: int = 1100, height: int = 700):
        p = cls(settings=settings, live=devkit_view)
        qtbot.addWidget(p)
        p.resize(width, height)
        p.show()
        panels.append(p)
        return p

    yield make
    for p in panels:
        p.shutdown()


@pytest.fixture
def run_job(qtbot):
    """run_job(panel, start) -> the finished job's result; start() must accept the job."""

    def run(panel, start, timeout_ms: int = 120_000):
        with qtbot.waitSignal(panel.job_finished, timeout=timeout_ms) as blocker:
            assert start(), panel.error.text()
        return blocker.args[0]

    return run
