"""The models the live view runs: featurizer, optional classifier, optional categories.

A `ModelSet` is immutable; every change (`with_featurizer`, `with_classifier`, ...) loads and
validates the new file and returns a new set, or raises a `KwsError` naming the file and the
problem while the old set stays usable. No Qt here: the panels only display it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from core.errors import KwsError, ModelFormatError
from core.features.featurizer import FeaturizerConfig, build_featurizer
from core.graph.interpreter import Interpreter
from core.graph.ir import Graph, Node
from core.models import (
    DEFAULT_CATEGORIES,
    DEFAULT_CLASSIFIER,
    DEFAULT_FEATURIZER,
    load_categories,
    load_model,
)

BUILTIN = "built-in"  # the featurizer path shown when it was built from FeaturizerConfig()


def _sizes(graph: Graph, path: Path | str) -> tuple[int, int]:
    try:
        rt = Interpreter(graph)
    except KwsError:
        raise
    except Exception as e:  # a graph that loads but cannot run is a bad model file
        raise ModelFormatError(f"{path}: not a runnable model: {e}") from None
    return rt.input_size, rt.output_size


def _load(path: str | os.PathLike, kind: str) -> Graph:
    """Load a model and refuse one whose metadata says it is the other kind."""
    graph = load_model(path)
    found = graph.metadata.get("kind")
    if found and found != kind:
        raise ModelFormatError(f"{path}: this is a {found} model, not a {kind}")
    return graph


def vad_probe(classifier: Graph | None) -> Graph | None:
    """The part of the classifier that computes its (first) VAD node's 0/1 signal, as a graph of
    its own (input -> ... -> vad -> output); None when the classifier has no VAD node."""
    if classifier is None:
        return None
    vads = classifier.by_op("vad")
    if not vads:
        return None
    g = classifier.copy()
    out = g.output_node
    g.nodes = [n for n in g.nodes if n.op != "output"] + [Node(out.id, "output", [vads[0].id])]
    g.metadata = {"kind": "vad probe"}
    return g.prune()


@dataclass(frozen=True)
class ModelSet:
    featurizer: Graph
    featurizer_path: str = BUILTIN
    classifier: Graph | None = None
    classifier_path: str | None = None
    categories: tuple[str, ...] | None = None
    categories_path: str | None = None
    hop_length: int = 512
    n_features: int = 80
    n_classes: int = 0
    classifier_inputs: int = 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def builtin(cls) -> ModelSet:
        """The featurizer built on the fly from the default FeaturizerConfig(), no classifier."""
        graph = build_featurizer(FeaturizerConfig())
        hop, n = _sizes(graph, BUILTIN)
        return cls(graph, BUILTIN, hop_length=hop, n_features=n)

    @classmethod
    def default(cls) -> ModelSet:
        """The bundled models in assets/ when they exist, else the built-in featurizer alone."""
        models = cls.from_featurizer(DEFAULT_FEATURIZER) if DEFAULT_FEATURIZER.exists() else cls.builtin()
        if DEFAULT_CLASSIFIER.exists():
            models = models.with_classifier(DEFAULT_CLASSIFIER)
            if DEFAULT_CATEGORIES.exists():
                models = models.with_categories(DEFAULT_CATEGORIES)
        return models

    @classmethod
    def from_featurizer(cls, path: str | os.PathLike) -> ModelSet:
        graph = _load(path, "featurizer")
        hop, n = _sizes(graph, path)
        return cls(graph, str(path), hop_length=hop, n_features=n)

    def with_featurizer(self, path: str | os.PathLike) -> ModelSet:
        new = ModelSet.from_featurizer(path)
        if self.classifier is not None and new.n_features != self.classifier_inputs:
            raise ModelFormatError(
                f"{path}: the featurizer emits {new.n_features} features but the loaded classifier "
                f"{Path(self.classifier_path or '').name} expects {self.classifier_inputs}; "
                "remove the classifier first"
            )
        return replace(self, featurizer=new.featurizer, featurizer_path=str(path), hop_length=new.hop_length,
                       n_features=new.n_features)

    def with_builtin_featurizer(self) -> ModelSet:
        new = ModelSet.builtin()
        if self.classifier is not None and new.n_features != self.classifier_inputs:
            raise ModelFormatError(
                f"the built-in featurizer emits {new.n_features} features but the loaded classifier "
                f"expects {self.classifier_inputs}; remove the classifier first"
            )
        return replace(self, featurizer=new.featurizer, featurizer_path=BUILTIN, hop_length=new.hop_length,
                       n_features=new.n_features)

    def with_classifier(self, path: str | os.PathLike) -> ModelSet:
        graph = _load(path, "classifier")
        n_in, n_out = _sizes(graph, path)
        if n_in != self.n_features:
            raise ModelFormatError(
                f"{path}: the classifier expects {n_in} features but the featurizer "
                f"({Path(self.featurizer_path).name}) emits {self.n_features}"
            )
        return replace(self, classifier=graph, classifier_path=str(path), n_classes=n_out,
                       classifier_inputs=n_in)

    def with_classifier_graph(self, graph: Graph, path: str | os.PathLike | None = None) -> ModelSet:
        """A classifier already in memory (e.g. with a tuned VAD); `path` is what the panel shows."""
        n_in, n_out = _sizes(graph, path or "classifier")
        if n_in != self.n_features:
            raise ModelFormatError(
                f"{path or 'the classifier'}: expects {n_in} features but the featurizer "
                f"({Path(self.featurizer_path).name}) emits {self.n_features}"
            )
        return replace(self, classifier=graph, classifier_path=str(path or "(in memory)"), n_classes=n_out,
                       classifier_inputs=n_in)

    def without_classifier(self) -> ModelSet:
        return replace(self, classifier=None, classifier_path=None, n_classes=0, classifier_inputs=0)

    def with_categories(self, path: str | os.PathLike) -> ModelSet:
        cats = tuple(load_categories(path))
        return replace(self, categories=cats, categories_path=str(path))

    # ------------------------------------------------------------------ derived
    @property
    def sample_rate(self) -> int:
        meta = self.featurizer.metadata
        return int(meta.get("sample_rate") or meta.get("featurizer", {}).get("sample_rate") or 16000)

    @property
    def frame_duration_s(self) -> float:
        return self.hop_length / self.sample_rate

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per class: the categories file's, else the classifier's own, padded with indices."""
        cats = self.categories or (tuple(self.classifier.categories) if self.classifier is not None else ())
        return tuple(cats[i] if i < len(cats) else str(i) for i in range(self.n_classes))

    @property
    def categories_mismatch(self) -> str | None:
        if self.classifier is None or self.categories is None or len(self.categories) == self.n_classes:
            return None
        return (f"{Path(self.categories_path or '').name} has {len(self.categories)} categories but the "
                f"classifier has {self.n_classes} outputs")

    def describe(self) -> str:
        feat = "built-in (80 mel)" if self.featurizer_path == BUILTIN else Path(self.featurizer_path).name
        parts = [f"Featurizer: {feat}, {self.n_features} features, "
                 f"hop {self.hop_length} @ {self.sample_rate} Hz"]
        if self.classifier is None:
            parts.append("Classifier: none (spectrogram only)")
        else:
            parts.append(f"Classifier: {Path(self.classifier_path or '').name}, {self.n_classes} classes")
            parts.append(f"Categories: {Path(self.categories_path).name}" if self.categories_path
                         else "Categories: the model's" if self.classifier.categories
                         else "Categories: none (class numbers)")
        return "   |   ".join(parts)
