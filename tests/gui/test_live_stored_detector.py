"""The live view takes a classifier's stored threshold and smoothing (kws calibrate) when it loads it."""

from __future__ import annotations

import pytest

from core import models
from core.graph import modelfile
from core.pipeline import DETECTOR_KEY

pytestmark = pytest.mark.skipif(not models.default_models_available(), reason="no bundled model in assets/")


def test_a_calibrated_classifier_sets_threshold_and_smoothing(view, tmp_path):
    view.threshold_spin.setValue(0.5)
    view.smoothing_spin.setValue(1)
    clf = models.load_model(models.DEFAULT_CLASSIFIER)
    clf.metadata[DETECTOR_KEY] = {"threshold": 0.995, "smoothing": 4}
    path = modelfile.save(clf, tmp_path / "calibrated.kwm")
    assert view.load_classifier(path), view.error_label.text()
    assert (view.threshold_spin.value(), view.smoothing_spin.value()) == (0.995, 4)
    assert view.controls.get()[1:] == (0.995, 4)  # what the worker detects with
    assert "threshold 0.995 from the model" in view.log.toPlainText()
    view.threshold_spin.setValue(0.7)  # the user's choice wins from here on
    assert view.controls.get()[1:] == (0.7, 4)
    # a model that stores nothing leaves the user's settings alone; a broken entry is an error line
    assert view.load_classifier(models.DEFAULT_CLASSIFIER)
    assert view.controls.get()[1:] == (0.7, 4)
    clf.metadata[DETECTOR_KEY] = {"threshold": 7, "smoothing": 0}
    bad = modelfile.save(clf, tmp_path / "bad.kwm")
    view.load_classifier(bad)
    assert DETECTOR_KEY in view.error_label.text() and view.controls.get()[1:] == (0.7, 4)
