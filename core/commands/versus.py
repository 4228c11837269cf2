"""Two models side by side on held-out lists: ours (--featurizer/--classifier, default the bundled
model) and another (--other DIR with featurizer + classifier + categories.txt, e.g. the ELL DevKit
folder, or --other-featurizer/--other-classifier). Per list: pass rate reset per clip for both
(best frame per clip) and both as one shuffled continuous stream with their own VADs (the mean
over --shuffles orders). Reset per clip compares the classifiers: both VADs are removed unless
--keep-vad."""

from __future__ import annotations

import json
from pathlib import Path

from core import models
from core.commands.common import add_model_arguments, resolve_models
from core.errors import KwsError
from core.evaluate.passrate import read_list
from core.evaluate.versus import HEADER, Model, row_text, versus
from core.fsutil import write_text_atomic


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--list-file", "-l", action="append", required=True, metavar="LIST",
                   help="a list of labelled clips (repeat for several held-out sets)")
    o = p.add_argument_group("the other model")
    o.add_argument("--other", metavar="DIR", help="folder with featurizer.(ell|kwm), classifier.(ell|kwm|onnx), "
                   "categories.txt")
    o.add_argument("--other-featurizer", metavar="F", help="the other model's featurizer")
    o.add_argument("--other-classifier", metavar="C", help="the other model's classifier")
    o.add_argument("--other-categories", metavar="T", help="the other model's categories file")
    p.add_argument("--keep-vad", action="store_true", help="keep both models' VADs when reset per clip")
    p.add_argument("--seed", type=int, default=0, help="seed of the continuous stream's clip order")
    p.add_argument("--shuffles", type=int, default=1, metavar="N",
                   help="continuous: the mean over N shuffled orders (seeds SEED..SEED+N-1)")
    p.add_argument("--json", metavar="OUT", help="write the table to this JSON file")


def _find(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path:
    for s in suffixes:
        if (folder / f"{stem}{s}").is_file():
            return folder / f"{stem}{s}"
    raise KwsError(f"{folder}: no {stem}{'|'.join(suffixes)} in this folder")


def other_model(args) -> Model:
    folder = Path(args.other) if args.other else None
    f = args.other_featurizer or (folder and _find(folder, "featurizer", (".kwm", ".ell")))
    c = args.other_classifier or (folder and _find(folder, "classifier", (".kwm", ".ell", ".onnx")))
    if not f or not c:
        raise KwsError("kws versus: give --other DIR, or --other-featurizer and --other-classifier")
    clf = models.load_model(c)
    t = args.other_categories or (folder / "categories.txt" if folder else None)
    cats = models.load_categories(t) if t else clf.categories
    if not cats or len(cats) != clf.output_size:
        raise KwsError(f"{c}: {len(cats or [])} categories for {clf.output_size} outputs; pass --other-categories")
    return Model(models.load_model(f), clf, list(cats))


def main(args) -> int:
    featurizer, classifier, cats = resolve_models(args)
    if classifier is None:
        raise KwsError("kws versus: needs a classifier")
    other = other_model(args)
    if args.shuffles < 1:
        raise KwsError(f"kws versus: --shuffles must be >= 1, got {args.shuffles}")
    sets = {Path(p).stem: read_list(p) for p in args.list_file}
    print(HEADER)
    rows = versus(Model(featurizer, classifier, cats), other, sets, args.seed,
                  on_row=lambda r: print(row_text(r), flush=True), keep_vad=args.keep_vad, shuffles=args.shuffles)
    if args.json:
        write_text_atomic(args.json, json.dumps([r.to_dict() for r in rows], indent=1))
    return 0
