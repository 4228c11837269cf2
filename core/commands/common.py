"""Argument helpers shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import models
from core.errors import KwsError
from core.graph.ir import Graph


def add_model_arguments(p: argparse.ArgumentParser, classifier: bool = True) -> None:
    g = p.add_argument_group("models (default: the bundled models in assets/)")
    g.add_argument("--featurizer", "-f", metavar="F", help="featurizer model (.kwm or .ell)")
    if classifier:
        g.add_argument("--classifier", "-c", metavar="C", help="classifier model (.kwm, .ell or .onnx)")
        g.add_argument("--categories", "-cat", metavar="T", help="categories file, one label per line")


def resolve_models(args) -> tuple[Graph, Graph | None, list[str]]:
    """Featurizer, classifier and categories from the arguments or the bundled defaults."""
    feat_path = args.featurizer
    clf_path = getattr(args, "classifier", None)
    if feat_path is None and clf_path is None:
        if not models.default_models_available():
            raise KwsError(
                "no bundled default model yet: pass --featurizer F --classifier C --categories T "
                "(for example the ELL DevKit model in ../shared/data/ell_devkit_model)"
            )
        feat_path, clf_path = models.DEFAULT_FEATURIZER, models.DEFAULT_CLASSIFIER
    elif feat_path is None:
        raise KwsError("--classifier needs --featurizer too (the featurizer the classifier was trained with)")
    featurizer = models.load_model(feat_path)
    classifier = models.load_model(clf_path) if clf_path else None
    cats: list[str] = []
    cat_path = getattr(args, "categories", None)
    if cat_path:
        cats = models.load_categories(cat_path)
    elif classifier is not None and classifier.categories:
        cats = classifier.categories
    elif classifier is not None and clf_path == models.DEFAULT_CLASSIFIER and models.DEFAULT_CATEGORIES.exists():
        cats = models.load_categories(models.DEFAULT_CATEGORIES)
    if classifier is not None and not cats:
        raise KwsError(f"{clf_path}: the model carries no categories; pass --categories T")
    if classifier is not None:
        n = classifier.output_size
        if len(cats) != n:
            raise KwsError(f"{cat_path or clf_path}: {len(cats)} categories but the classifier has {n} outputs")
    return featurizer, classifier, cats


def existing_file(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    return p


def time_text(seconds: float) -> str:
    """A per-frame processing time with its unit, e.g. '0.0342 ms per frame'."""
    return f"{1e3 * seconds:.3g} ms per frame"
