"""Quantize a classifier to int8 (post-training): int8 weights per output channel for its dense,
GRU and LSTM nodes, activation ranges calibrated on the real clips of a list; gates, state,
featurizer and softmax stay float32. Prints the float and int8 pass rates (reset per clip, best
frame) on the calibration list, or on --eval-list, and the weight bytes of both.

  kws quantize classifier.ell -f featurizer.ell --calibrate train_list.txt -o classifier_int8.kwm
"""

from __future__ import annotations

import sys
from pathlib import Path

from core import models
from core.audio.wav import read_wav
from core.errors import KwsError
from core.evaluate.passrate import evaluate_clips, read_list, skipped_summary
from core.graph import modelfile
from core.pipeline import KeywordSpotter
from core.progress import Progress


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="the float classifier (.kwm, .ell or .onnx)")
    p.add_argument("--featurizer", "-f", metavar="F",
                   help="the featurizer the classifier was trained with (default: the bundled one)")
    p.add_argument("--categories", "-cat", metavar="T",
                   help="categories file (default: the model's own, or categories.txt beside it)")
    p.add_argument("--calibrate", required=True, metavar="LIST", help="list of labelled wavs to calibrate on")
    p.add_argument("--eval-list", metavar="LIST", help="list to report pass rates on (default: the calibration list)")
    p.add_argument("--max-clips", type=int, metavar="N", help="use only the first N clips of each list")
    p.add_argument("--act-bits", type=int, choices=(8, 16), default=8, help="bits of the quantized activations")
    p.add_argument("--state-bits", type=int, choices=(8, 16),
                   help="bits of the quantized recurrent state (default: --act-bits)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the int8 model to write (.kwm)")


def _categories(args, classifier) -> list[str]:
    if args.categories:
        cats = models.load_categories(args.categories)
    elif classifier.categories:
        cats = classifier.categories
    elif (beside := Path(args.model).resolve().parent / "categories.txt").is_file():
        cats = models.load_categories(beside)
    else:
        raise KwsError(f"{args.model}: the model carries no categories; pass --categories T")
    if len(cats) != classifier.output_size:
        raise KwsError(f"{args.categories or args.model}: {len(cats)} categories but the classifier has "
                       f"{classifier.output_size} outputs")
    return cats


def _features(spotter: KeywordSpotter, clips, what: str):
    bar = Progress(len(clips), what)
    skipped = []
    for k, (path, _) in enumerate(clips):
        try:
            x, _ = read_wav(path, spotter.sample_rate)
        except KwsError as e:
            skipped.append(str(e))
            continue
        spotter.reset()
        feats, _ = spotter.process(x)
        bar(k + 1)
        yield feats
    bar.close()
    if skipped:
        print(skipped_summary(skipped), file=sys.stderr)


def main(args) -> int:
    from core.quantize import calibrate, quantize_graph, weight_bytes

    if Path(args.output).suffix.lower() != modelfile.EXTENSION:
        raise KwsError(f"{args.output}: the int8 model is written as a {modelfile.EXTENSION} file")
    classifier = models.load_model(args.model)
    featurizer = models.load_model(args.featurizer or models.DEFAULT_FEATURIZER)
    if featurizer.output_size != classifier.input_size:
        raise KwsError(f"{args.model} expects {classifier.input_size} features but the featurizer "
                       f"{args.featurizer or models.DEFAULT_FEATURIZER} emits {featurizer.output_size}: "
                       "pass the classifier's own featurizer with --featurizer")
    cats = _categories(args, classifier)
    calib_clips = read_list(args.calibrate)[: args.max_clips]
    eval_clips = read_list(args.eval_list)[: args.max_clips] if args.eval_list else calib_clips
    fz = KeywordSpotter(featurizer, None)
    cal = calibrate(classifier, _features(fz, calib_clips, "calibrating"))
    q = quantize_graph(classifier, cal, args.act_bits, args.state_bits)
    q.metadata["categories"] = list(cats)
    q.metadata.setdefault("kind", "classifier")
    rates = {}
    for label, g in (("float", classifier), ("int8", q)):
        res = evaluate_clips(KeywordSpotter(featurizer, g), cats, eval_clips, reset=True)
        rates[label] = res
    modelfile.save(q, args.output)
    fb, qb = weight_bytes(classifier), weight_bytes(q)
    where = args.eval_list or args.calibrate
    print(f"calibrated on {cal.clips} clips ({cal.frames} frames) of {args.calibrate}; "
          f"activations {args.act_bits} bits, state {args.state_bits or args.act_bits} bits")
    for label, res in rates.items():
        print(f"{label:>5}: pass rate {100 * res.rate:6.2f} % ({res.passed}/{len(res.results)} clips of {where}, "
              f"reset per clip, best frame)")
    print(f"weights: float {fb:,} bytes, int8 {qb:,} bytes ({fb / qb:.2f}x smaller)")
    print(f"wrote {args.output}")
    return 0
