"""kwsgui: the Qt desktop app of the keyword-spotting workbench (the work itself lives in `core`).

Modules: `app` (main window, entry point), `live_view` (the live panel), `workers` (streaming
worker on a QThread), `plots` (spectrogram ring and probability bars), `model_set` (the models
the live view runs).
"""

__all__ = ["ORGANIZATION", "APPLICATION"]

ORGANIZATION = "kwsgui"
APPLICATION = "kwsgui"
