"""Layouts that do not jump: showing or clearing an error, in every panel and the live view,
moves no control (the banner keeps its one line); a long error is elided to that line."""

from __future__ import annotations

import importlib

import pytest
from PyQt5.QtWidgets import QWidget

PANELS = [("kwsgui.dataset_panel", "DatasetPanel"), ("kwsgui.train_panel", "TrainPanel"),
          ("kwsgui.models_panel", "ModelsPanel"), ("kwsgui.vad_panel", "VadPanel"),
          ("kwsgui.compile_panel", "CompilePanel"), ("kwsgui.eval_panel", "EvalPanel"),
          ("kwsgui.keyword_panel", "KeywordPanel")]
LONG_ERROR = "/a/rather/long/path/to/some/file.wav: cannot read: " + "a very long reason " * 30


def geometry(root: QWidget, banner: QWidget) -> dict:
    """Where every visible control sits (in root's coordinates), the banner aside."""
    return {w: (type(w).__name__, w.mapTo(root, w.rect().topLeft()), w.size())  # the key keeps w alive
            for w in root.findChildren(QWidget) if w.isVisible() and w is not banner}


def check_still(qtbot, root, banner, show, clear) -> None:
    qtbot.wait(30)
    before = geometry(root, banner)
    height = banner.height()
    show(LONG_ERROR)
    qtbot.wait(30)
    assert banner.isVisible() and banner.text() == LONG_ERROR and banner.toolTip() == LONG_ERROR
    assert banner.height() == height and banner.elided_text() != LONG_ERROR  # one line, elided
    moved = {k: (before[k], v) for k, v in geometry(root, banner).items() if k in before and before[k] != v}
    assert not moved, moved
    clear()
    qtbot.wait(30)
    assert banner.isHidden() and geometry(root, banner) == before


@pytest.mark.parametrize("module, cls", PANELS, ids=[c for _, c in PANELS])
def test_an_error_moves_no_control(qtbot, settings, view, module, cls):
    panel = getattr(importlib.import_module(module), cls)(settings=settings, live=view)
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.show()
    qtbot.waitExposed(panel)
    try:
        check_still(qtbot, panel, panel.error, panel.show_error, panel.clear_error)
    finally:
        panel.shutdown()


def test_an_error_moves_nothing_in_the_live_view(qtbot, view):
    check_still(qtbot, view, view.error_label, view.show_error, view.clear_error)
