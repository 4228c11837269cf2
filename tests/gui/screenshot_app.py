"""Run by test_screenshot.py under Xvfb (a real X server, QT_QPA_PLATFORM=xcb): opens the real
main window, loads the given models, plays the demo wav at 2x real time, and once the last
keyword of the demo ("marvin") has been detected saves `window.grab()` to OUT_PNG and, when
imagemagick is there, the whole X screen to OUT_PNG with a `-root` suffix. Exit 0 on success.

    python screenshot_app.py OUT_PNG SETTINGS_INI FEATURIZER CLASSIFIER CATEGORIES
"""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from PyQt5.QtCore import QSettings, QTimer  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402

from core.models import DEMO_WAV  # noqa: E402
from kwsgui.app import MainWindow  # noqa: E402

LAST_WORD = "DETECTED marvin"
TIMEOUT_MS = 60_000


def main() -> int:
    out, ini, featurizer, classifier, categories = sys.argv[1:6]
    out = Path(out)
    app = QApplication(sys.argv[:1])
    win = MainWindow(settings=QSettings(ini, QSettings.IniFormat))
    win.load_startup_models(featurizer, classifier, categories)
    win.resize(1200, 760)
    win.show()
    view = win.live_view
    result = {"rc": 3}

    def shoot() -> None:
        view._draw(force=True)
        app.processEvents()
        if not win.grab().save(str(out)):
            print(f"cannot save {out}", file=sys.stderr)
            result["rc"] = 4
        else:
            result["rc"] = 0
            if shutil.which("import"):
                root = out.with_name(out.stem + "-root.png")
                subprocess.run(["import", "-window", "root", str(root)], check=False, timeout=30)
        win.close()

    def poll() -> None:
        if LAST_WORD in view.log.toPlainText():
            timer.stop()
            QTimer.singleShot(120, shoot)  # a few draws later: the bars show the word

    def give_up() -> None:
        print(f"timed out waiting for {LAST_WORD!r}; log:\n{view.log.toPlainText()}", file=sys.stderr)
        result["rc"] = 2
        win.close()

    view.stream_failed.connect(lambda text: print(f"stream failed: {text}", file=sys.stderr))
    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(20)
    QTimer.singleShot(TIMEOUT_MS, give_up)
    QTimer.singleShot(300, lambda: view.play(DEMO_WAV, realtime=True, speed=2.0, play_audio=False))
    app.exec_()
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
