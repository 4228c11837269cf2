"""kwsgui: the Qt desktop app of the keyword-spotting workbench (the work itself lives in `core`).

Modules: `app` (main window, entry point); one per panel: `live_view` (+ `live_source`),
`dataset_panel`, `train_panel`, `models_panel`, `vad_panel`, `compile_panel`, `eval_panel`;
`jobs` (the generic job worker on a QThread), `subproc` (a job in a child process), `workers`
(the live streaming worker), `widgets` and `charts` (shared widgets and plots), `plots`
(spectrogram ring, probability bars), `model_set` (the live view's models), `bench` (GUI
responsiveness benchmark). Qt-free: `model_set`, `subproc`, `train_task`.
"""

__all__ = ["ORGANIZATION", "APPLICATION"]

ORGANIZATION = "kwsgui"
APPLICATION = "kwsgui"
