"""Launch the kwsgui app with the bundled default models.

    python main.py [--featurizer F --classifier C --categories T] [--wav W] [--quit-after SECONDS]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing


def _has_screen() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


if __name__ == "__main__":
    if not _has_screen():
        print("kwsgui: no screen (DISPLAY is not set). Run it in a desktop session, or on a headless machine "
              "with a virtual one: xvfb-run -a make run (or QT_QPA_PLATFORM=offscreen to run without showing).",
              file=sys.stderr)
        sys.exit(2)
    from kwsgui.app import main

    sys.exit(main())
