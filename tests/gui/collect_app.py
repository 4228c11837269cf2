"""Run by test_collect_panel.py in a fresh interpreter whose ALSA default device is file-backed
(PortAudio reads the ALSA config once per process): the Collect panel, label typed, Record pressed
with "stop after" set to the file's length; when the job ends, the first card is played (into the
ALSA output file). Prints one JSON line: the cards, the counts line and the played clip's path.
Exit 0 on success, 2 on timeout.

    python collect_app.py FOLDER LABEL SECONDS SETTINGS_INI
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from PyQt5.QtCore import QSettings, QTimer  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402

from kwsgui.collect_panel import CollectPanel  # noqa: E402

TIMEOUT_MS = 60_000


def main() -> int:
    folder, label, seconds, ini = sys.argv[1:5]
    app = QApplication(sys.argv[:1])
    panel = CollectPanel(settings=QSettings(ini, QSettings.IniFormat))
    panel.resize(1000, 700)
    panel.show()
    panel.folder.set_path(folder)
    panel.label_edit.setText(label)
    panel.speaker_edit.setText("mic")
    panel.limit_spin.setValue(float(seconds))
    state = {"rc": 2, "levels": 0}
    panel.meter.update = lambda: state.__setitem__("levels", state["levels"] + 1)  # count meter updates

    def played(summary):
        cards = [(c.path, c.label, list(c.lines)) for c in panel.model.cards]
        print(json.dumps({"cards": cards, "counts": panel.counts_label.text(), "played": panel.player.path,
                          "play_error": summary.error, "error": panel.error.text(), "levels": state["levels"],
                          "session": panel.session_label.text()}))
        state["rc"] = 0
        app.quit()

    def recorded(summary):
        if not summary.completed or not panel.model.cards:
            print(json.dumps({"error": panel.error.text() or summary.error, "cards": []}))
            app.quit()
            return
        panel.player.finished.connect(played)
        panel.view.select_path(panel.model.cards[-1].path)  # the first word said (cards are newest first)
        panel.play_button.click()

    panel.job_finished.connect(recorded)
    QTimer.singleShot(0, panel.record_button.click)
    QTimer.singleShot(TIMEOUT_MS, app.quit)
    app.exec_()
    panel.shutdown()
    return state["rc"]


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
