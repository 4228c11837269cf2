"""Run by test_live_view.py in a fresh interpreter whose ALSA default device is file-backed
(PortAudio reads the ALSA config once per process): a LiveView with the given models picks the
microphone, records SECONDS of it to OUT_WAV while detecting, and prints one JSON line with the
microphones it listed, the detections, the VAD frames and the recording's summary. Exit 0 on
success, 2 on timeout.

    python mic_app.py FEATURIZER CLASSIFIER CATEGORIES SECONDS OUT_WAV SETTINGS_INI
"""

import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from PyQt5.QtCore import QSettings, QTimer  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402

from kwsgui.live_view import LiveView  # noqa: E402

TIMEOUT_MS = 60_000
LINE = re.compile(r"^\s*\d+\.\d\d s  DETECTED (\S+) \d{1,3}%$")


def main() -> int:
    featurizer, classifier, categories, seconds, out_wav, ini = sys.argv[1:7]
    app = QApplication(sys.argv[:1])
    view = LiveView(settings=QSettings(ini, QSettings.IniFormat))
    for load, path in ((view.load_featurizer, featurizer), (view.load_classifier, classifier),
                       (view.load_categories, categories)):
        if not load(path):
            print(view.error_label.text(), file=sys.stderr)
            return 3
    view.show()
    view.source.set_kind("mic")  # lists the devices
    view.source.limit_spin.setValue(float(seconds))
    state = {"rc": 2}

    def finished(summary):
        labels = [m.group(1) for ln in view.log.toPlainText().splitlines() if (m := LINE.match(ln))]
        devices = [view.source.device_combo.itemText(i) for i in range(view.source.device_combo.count())]
        print(json.dumps({"devices": devices, "note": view.source.mic_note.text(), "detections": labels,
                          "frames": summary.frames, "recorded": summary.recorded, "error": summary.error,
                          "vad_frames": view.stats["vad_frames"], "max_level_db": view.stats["max_level_db"],
                          "backend": view.backend_label.text()}))
        state["rc"] = 0 if summary.error is None else 4
        app.quit()

    view.stream_finished.connect(finished)

    def start():
        if not view.record(out_wav):
            print(view.error_label.text(), file=sys.stderr)
            app.quit()

    QTimer.singleShot(0, start)
    QTimer.singleShot(TIMEOUT_MS, app.quit)
    app.exec_()
    view.shutdown()
    return state["rc"]


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # skip the interpreter's teardown of a parentless top-level view (pyqtgraph legends)
