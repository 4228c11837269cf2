"""Teachers for knowledge distillation: any model the app loads labels training rows.

    teacher = Teacher.load("devkit/classifier.ell", student_categories,
                           featurizer="devkit/featurizer.ell")   # only when its features differ
    q = teacher.label_rows(rows)            # (rows, frames, n_features) -> (rows, n_student) probs
    q = teacher.label_audio(clip, sr, ends) # its own featurizer: probs at each end sample

The teacher runs compiled for this machine (the same code `kws run` uses; the interpreter when
compiling fails), state reset per row, and its last frame's probabilities are the row's soft
target, like the last-frame label the trainer uses. Categories are matched by name (background
aliases such as `_background_noise_` / `background_noise` / `silence` count as one); a teacher
class the student lacks goes to the student's unknown class when it has one (else it is
dropped and the rest renormalised); a student class the teacher lacks gets no soft target
(`covered` says which ones the teacher can speak for). By default the teacher's VAD is removed:
a VAD reset inside a row would wipe the word before the row's last frame.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError, KwsError
from core.graph.ir import Graph

BACKGROUND_ALIASES = ("background_noise", "_background_noise_", "background", "silence", "_silence_")
UNKNOWN_ALIASES = ("unknown", "_unknown_", "other")


def _canon(name: str) -> str:
    n = name.strip().lower()
    if n in BACKGROUND_ALIASES:
        return "<background>"
    if n in UNKNOWN_ALIASES:
        return "<unknown>"
    return n


def category_map(teacher: list[str], student: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(mapping (n_teacher, n_student) of 0/1, covered (n_student,) bool)."""
    s_index = {_canon(c): j for j, c in enumerate(student)}
    m = np.zeros((len(teacher), len(student)), np.float32)
    unknown = s_index.get("<unknown>")
    for i, c in enumerate(teacher):
        j = s_index.get(_canon(c), unknown)
        if j is not None:
            m[i, j] = 1.0
    covered = m.sum(axis=0) > 0
    if not covered.any():
        raise DataError(f"the teacher's categories ({', '.join(teacher[:6])}...) share no name with the "
                        f"student's ({', '.join(student[:6])}...)")
    return m, covered


def model_categories(graph: Graph, path: str | os.PathLike, categories_file: str = "", flag: str = "") -> list[str]:
    """A classifier's categories: the given file, else the model's own metadata, else the
    categories.txt beside the model file."""
    from core.models import load_categories

    if categories_file:
        return [str(c) for c in load_categories(categories_file)]
    cats = graph.metadata.get("categories")
    if isinstance(cats, list) and cats:
        return [str(c) for c in cats]
    beside = Path(path).with_name("categories.txt")
    if not beside.is_file():
        raise DataError(f"{path}: the model does not carry its categories and no categories.txt lies beside "
                        f"it; give its categories file{f' ({flag})' if flag else ''}")
    return [str(c) for c in load_categories(beside)]


def same_features(a: Graph, b: Graph, sample_rate: int = 16000) -> bool:
    """True when two featurizers give the same features (within float32 noise) on a test signal:
    a seeded chirp plus noise, 1 s, featurized by both from a fresh state."""
    from core.features.featurizer import featurize

    if a.input_size != b.input_size or a.output_size != b.output_size:
        return False
    rng = np.random.default_rng(7)
    t = np.arange(sample_rate) / sample_rate
    x = (0.3 * np.sin(2 * np.pi * (100 + 3000 * t) * t) + 0.05 * rng.standard_normal(sample_rate)).astype(np.float32)
    fa, fb = featurize(a, x), featurize(b, x)
    # log-mel features: float32 FFT + dot products differ by ~1e-6 absolute; a different featurizer
    # (mel layout, window, log offset) differs by far more than 1e-3 somewhere
    return fa.shape == fb.shape and bool(np.allclose(fa, fb, rtol=1e-3, atol=1e-3))


@dataclass(frozen=True)
class TeacherSpec:
    """What names a teacher: stored in TrainConfig / dataset meta, loaded in any process."""

    classifier: str
    featurizer: str = ""  # its own featurizer when its features differ from the student's
    categories: str = ""  # a categories file when the model does not carry its categories
    keep_vad: bool = False

    def describe(self) -> dict:
        def digest(p: str) -> str | None:
            if not p:
                return None
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()

        return {"classifier": str(Path(self.classifier).absolute()), "classifier_sha256": digest(self.classifier),
                "featurizer": self.featurizer or None, "categories": self.categories or None,
                "keep_vad": self.keep_vad}


class Teacher:
    def __init__(self, classifier: Graph, teacher_categories: list[str], student_categories: list[str],
                 featurizer: Graph | None = None, name: str = "teacher"):
        self.name = name
        self.categories = list(teacher_categories)
        if classifier.output_size != len(self.categories):
            raise DataError(f"{name}: the model has {classifier.output_size} outputs but "
                            f"{len(self.categories)} categories")
        self.mapping, self.covered = category_map(self.categories, list(student_categories))
        self.classifier = classifier
        self.featurizer = featurizer
        self._clf = self._runtime(classifier, "teacher_clf")
        self._feat = self._runtime(featurizer, "teacher_feat") if featurizer is not None else None
        self.n_features = int(classifier.input_size)

    @staticmethod
    def _runtime(graph: Graph, name: str):
        try:
            from core.compiler.runtime import CompiledModel

            return CompiledModel(graph, name)
        except KwsError:
            from core.graph.interpreter import Interpreter

            return Interpreter(graph)

    @classmethod
    def load(cls, spec: TeacherSpec, student_categories: list[str]) -> Teacher:
        from core.models import load_model
        from core.vad.model import strip_vad

        graph = load_model(spec.classifier)
        if not spec.keep_vad:
            graph = strip_vad(graph)
        cats = model_categories(graph, spec.classifier, spec.categories, "--teacher-categories")
        feat = load_model(spec.featurizer) if spec.featurizer else None
        return cls(graph, cats, student_categories, feat, name=str(spec.classifier))

    # ------------------------------------------------------------------ labelling
    def _student_probs(self, p: np.ndarray) -> np.ndarray:
        """Teacher probabilities (..., n_teacher) -> the student's classes, summing to 1."""
        q = np.asarray(p, np.float64) @ self.mapping
        s = q.sum(axis=-1, keepdims=True)
        return (q / np.where(s > 0, s, 1.0)).astype(np.float32)

    def label_rows(self, rows: np.ndarray) -> np.ndarray:
        """(rows, frames, n_features) features of the teacher's own kind -> (rows, n_student)."""
        x = np.asarray(rows, np.float32)
        if x.ndim != 3 or x.shape[2] != self.n_features:
            raise DataError(f"{self.name}: rows must be (rows, frames, {self.n_features}) features, got {x.shape}")
        out = np.empty((len(x), len(self.categories)), np.float32)
        for i, r in enumerate(x):
            self._clf.reset()
            out[i] = self._clf.run(r)[-1]
        return self._student_probs(out)

    def label_audio(self, samples: np.ndarray, sample_rate: int, ends: list[int], frames: int) -> np.ndarray:
        """Soft targets from the teacher's own featurizer: for each end sample, the teacher's last
        frame after hearing the `frames` teacher hops before it (state reset first)."""
        from core.audio.resample import resample
        from core.features.featurizer import featurize

        if self.featurizer is None:
            raise DataError(f"{self.name}: label_audio needs the teacher's featurizer")
        sr_t = int(self.featurizer.metadata.get("sample_rate") or sample_rate)
        x = np.asarray(samples, np.float32)
        if sr_t != sample_rate:
            x = resample(x, sample_rate, sr_t)
        hop = int(self.featurizer.input_size)
        out = np.empty((len(ends), len(self.categories)), np.float32)
        for k, end in enumerate(ends):
            stop = int(round(end * sr_t / sample_rate)) // hop * hop
            start = max(0, stop - frames * hop)
            seg = x[start:stop]
            if len(seg) < hop:
                seg = np.zeros(hop, np.float32)
            self._clf.reset()
            out[k] = self._clf.run(featurize(self.featurizer, seg))[-1]
        return self._student_probs(out)


def load_teacher(spec: TeacherSpec | None, student_categories: list[str], student_featurizer: dict | None = None,
                 need_same_features: bool = False) -> Teacher | None:
    """The teacher for a training run or dataset build, checked against the student's features."""
    if spec is None or not spec.classifier:
        return None
    for what, p in (("teacher model", spec.classifier), ("teacher featurizer", spec.featurizer),
                    ("teacher categories", spec.categories)):
        if p and not os.path.isfile(p):
            raise DataError(f"{p}: no such {what}")
    t = Teacher.load(spec, student_categories)
    if t.featurizer is not None and student_featurizer:
        from core.features.featurizer import FeaturizerConfig, build_featurizer

        cfg = student_featurizer.get("featurizer")
        if isinstance(cfg, dict) and cfg:
            mine = build_featurizer(FeaturizerConfig(**{k: v for k, v in cfg.items()
                                                         if k in FeaturizerConfig.__dataclass_fields__}))
            if same_features(mine, t.featurizer):
                t.featurizer = None  # same features: label the rows directly
    if need_same_features and t.featurizer is not None:
        raise DataError(f"{spec.featurizer}: the teacher's featurizer differs from the dataset's, so it cannot "
                        "label feature rows during training; label the dataset instead "
                        "(`kws dataset --teacher ... --teacher-featurizer ...`, then train with "
                        "--teacher-mode dataset)")
    return t
