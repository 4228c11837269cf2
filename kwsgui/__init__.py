"""kwsgui: the Qt desktop app of the keyword-spotting workbench (the work itself lives in `core`).

Modules: `app` (main window, entry point); one per panel: `live_view` (+ `live_ui`,
`live_source`), `dataset_panel`, `train_panel`, `models_panel`, `vad_panel` (+ `vad_plots`),
`compile_panel`, `eval_panel`; `panel` (the panel base: error banner, one job with a progress bar
and Stop), `jobs` (the generic job worker on a QThread), `subproc` (a job in a child process),
`workers` (the live streaming worker), `widgets`, `charts`, `plots` (shared widgets and plots),
`model_set` (the live view's models), `bench` (GUI responsiveness benchmark). Qt-free:
`model_set`, `subproc`, `train_task`, `dataset_task`, `vad_task`.
"""

__all__ = ["ORGANIZATION", "APPLICATION"]

ORGANIZATION = "kwsgui"
APPLICATION = "kwsgui"
