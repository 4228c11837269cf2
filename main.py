"""Launch the kwsgui app with the bundled default models.

    python main.py [--featurizer F --classifier C --categories T] [--wav W] [--quit-after SECONDS]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

from kwsgui.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
