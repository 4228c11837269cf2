"""Load any model a user points at (our .kwm, ELL .ell, ONNX .onnx) and category files."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import DataError, ModelFormatError
from core.fsutil import MiB, check_regular_file, read_text_bounded
from core.graph import modelfile
from core.graph.ir import Graph

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_FEATURIZER = ASSETS / "featurizer.kwm"
DEFAULT_CLASSIFIER = ASSETS / "classifier.kwm"
DEFAULT_CATEGORIES = ASSETS / "categories.txt"
# the layers `kws custom` starts from: the DevKit fine-tuned with ELL's last-frame targets (its state
# holds a word to the end of its 1 s row, as a custom detector's rows need; make default-model)
CUSTOM_INIT = ASSETS / "custom_init.kwm"
DEMO_WAV = ASSETS / "demo.wav"

MAX_MODEL_BYTES = 256 * MiB  # any model file (.kwm, .ell, .onnx); ours are well under 1 MiB
MAX_CATEGORIES_BYTES = 1 * MiB


def load_model(path: str | os.PathLike) -> Graph:
    from core.outputs import settle

    settle(Path(path).parent)  # a training or export set whose writer was killed mid-move: finish it
    p = check_regular_file(path, "model file", error=ModelFormatError, max_bytes=MAX_MODEL_BYTES)
    suffix = p.suffix.lower()
    if suffix == ".ell":
        from core.importers.ell import load_ell

        return load_ell(p)
    if suffix == ".onnx":
        try:
            from core.importers.onnx import load_onnx
        except ImportError:  # pragma: no cover - arrives with the ONNX importer
            raise ModelFormatError(f"{p}: ONNX import is not available in this build") from None
        return load_onnx(p)
    return modelfile.load(p)


def load_categories(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    lines = read_text_bounded(p, "categories file", error=DataError, max_bytes=MAX_CATEGORIES_BYTES).splitlines()
    cats = [ln.strip() for ln in lines if ln.strip()]
    if not cats:
        raise DataError(f"{p}: categories file is empty")
    return cats


def default_models_available() -> bool:
    return DEFAULT_FEATURIZER.exists() and DEFAULT_CLASSIFIER.exists()
