"""Choose the classifier's threshold and smoothing from measured false accepts and store them in it.

A long stream is assembled from the clips of --list-file (held-out recordings: the model's keywords
and other words; see `kws lists`), silence gaps of --gap-s and, with --noise-dir, background noise
under everything at --snr-db. The classifier runs over it once; every smoothing of
--smoothing-values and threshold of --thresholds is scored: false rejection rate (keyword clips with
no detection of their word) against false accepts per hour (every other detection). The operating
point is the lowest false rejection rate with at most --target-fa-per-hour; it is stored in the
classifier's metadata (-o NEW.kwm, or --in-place for a .kwm), which `kws run`, `kws eval` and the
live view then use unless a threshold or smoothing is given. --plot writes the DET curve as a PNG,
--json every point. A short stream cannot tell small rates apart: one false accept on a 10-minute
stream is 6 per hour (the output says what one is worth); longer gaps give more background."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.commands.common import add_model_arguments, resolve_models
from core.errors import KwsError
from core.evaluate.calibrate import (
    DEFAULT_SMOOTHINGS,
    DEFAULT_THRESHOLDS,
    calibrate_on_clips,
    default_ignore,
    plot_det,
    with_detector,
)
from core.evaluate.passrate import read_list
from core.fsutil import write_text_atomic
from core.progress import Progress


def _pair(text: str, name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name}: expected MIN,MAX seconds, got {text!r}") from None
    if not 0 <= a <= b:
        raise ValueError(f"{name}: expected 0 <= MIN <= MAX, got {text!r}")
    return a, b


def thresholds_from(text: str) -> tuple[float, ...]:
    """'LO:HI:STEP' (inclusive) or a comma list."""
    try:
        if ":" in text:
            lo, hi, step = (float(v) for v in text.split(":"))
            if step <= 0 or hi < lo:
                raise ValueError
            n = int(round((hi - lo) / step)) + 1
            return tuple(round(lo + i * step, 6) for i in range(n) if lo + i * step <= hi + 1e-9)
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--thresholds: expected LO:HI:STEP or a comma list of numbers, got {text!r}") from None


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--list-file", "-l", required=True, help="held-out clips (wav paths relative to the list's folder)")
    p.add_argument("--noise-dir", help="background noise wavs mixed under the stream")
    p.add_argument("--snr-db", type=float, default=20.0, help="speech-to-noise ratio of the stream in dB")
    p.add_argument("--gap-s", default="0.5,1.5", metavar="MIN,MAX", help="silence (or noise) between clips")
    p.add_argument("--max-tests", type=int, metavar="N", help="use only the first N clips of the list")
    p.add_argument("--seed", type=int, default=0, help="seed of the stream's gaps and noise offset")
    p.add_argument("--target-fa-per-hour", type=float, default=1.0, metavar="R",
                   help="the most false accepts per hour the operating point may have")
    p.add_argument("--thresholds", metavar="LO:HI:STEP",
                   help="thresholds to try, or a comma list (default: 0.30 to 0.95 by 0.01, then 0.96, 0.97, 0.98, "
                        "0.99, 0.995, 0.998, 0.999)")
    p.add_argument("--smoothing-values", default=",".join(map(str, DEFAULT_SMOOTHINGS)), metavar="N,...",
                   help="smoothing windows (frames) to try; 0 = off")
    p.add_argument("--ignore", metavar="LABEL,...",
                   help="classes that are not keywords (default: the model's background/silence/unknown classes)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="NEW.kwm", help="write the classifier with the stored operating point")
    out.add_argument("--in-place", action="store_true", help="store it into the --classifier .kwm file itself")
    p.add_argument("--plot", metavar="DET.png", help="write the DET curve")
    p.add_argument("--json", metavar="OUT", help="write every operating point to this JSON file")


def main(args) -> int:
    from core import models
    from core.graph import modelfile
    from core.pipeline import KeywordSpotter

    featurizer, classifier, cats = resolve_models(args)
    if classifier is None:
        raise SystemExit("kws calibrate: needs a classifier")
    clf_path = Path(args.classifier) if args.classifier else models.DEFAULT_CLASSIFIER
    if args.in_place and clf_path.suffix.lower() != ".kwm":
        raise KwsError(f"{clf_path}: --in-place stores into a .kwm model only; write a new one with -o NEW.kwm")
    if args.output and Path(args.output).suffix.lower() != ".kwm":
        raise KwsError(f"{args.output}: the output is a .kwm model file")
    try:
        smoothings = tuple(int(v) for v in args.smoothing_values.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--smoothing-values: expected whole numbers, got {args.smoothing_values!r}") from None
    ignore = tuple(s for s in args.ignore.split(",") if s) if args.ignore is not None else default_ignore(cats)
    unknown = [s for s in ignore if s not in cats]
    if unknown:
        raise ValueError(f"--ignore: not a class of the model: {', '.join(unknown)}")
    clips = read_list(args.list_file)[: args.max_tests]
    noise = None
    if args.noise_dir:
        from core.audio.sources import list_wavs

        noise = list_wavs(args.noise_dir)
    spotter = KeywordSpotter(featurizer, classifier)
    bar = Progress(0, "classify stream")
    try:
        cal = calibrate_on_clips(spotter, cats, clips, noise_files=noise, snr_db=args.snr_db,
                                 gap_s=_pair(args.gap_s, "--gap-s"), seed=args.seed,
                                 target_fa_per_hour=args.target_fa_per_hour,
                                 thresholds=thresholds_from(args.thresholds) if args.thresholds else DEFAULT_THRESHOLDS,
                                 smoothings=smoothings, ignore=ignore, progress=bar)
    finally:
        bar.close()
    print(f"stream: {cal.duration_s / 60:.1f} min, {cal.positives} keyword clips, {cal.others} clips of other words"
          f"{', noise ' + Path(args.noise_dir).name + f' at {args.snr_db:g} dB SNR' if noise else ', silent gaps'}; "
          f"one false accept = {cal.fa_resolution_per_hour:.2f} FA/h; not keywords: {', '.join(ignore) or 'none'}")
    print(f"\n{'smoothing':>9} {'threshold':>9} {'FRR %':>7} {'FA/h':>8}   (DET: the best FRR at each FA count)")
    for n in cal.smoothings:
        best: dict[int, object] = {}
        for pt in cal.curve(n):
            if pt.false_accepts not in best or pt.frr < best[pt.false_accepts].frr:
                best[pt.false_accepts] = pt
        for fa in sorted(best)[:6]:
            pt = best[fa]
            print(f"{n:9d} {pt.threshold:9.2f} {100 * pt.frr:7.2f} {pt.fa_per_hour:8.2f}")
    c = cal.chosen
    verdict = "meets" if cal.met else "NO point meets"
    print(f"\nchosen: threshold {c.threshold:g}, smoothing {c.smoothing}: false rejection {100 * c.frr:.2f} % "
          f"({c.misses}/{c.hits + c.misses}), {c.false_accepts} false accepts = {c.fa_per_hour:.2f} FA/h "
          f"({verdict} the target of {cal.target_fa_per_hour:g} FA/h)")
    if not cal.met:
        print("warning: the target was not met; the point with the fewest false accepts is stored", file=sys.stderr)
    dest = clf_path if args.in_place else Path(args.output) if args.output else None
    if dest is not None:
        modelfile.save(with_detector(classifier, cal, cats), dest)
        print(f"stored threshold {c.threshold:g} and smoothing {c.smoothing} in {dest}")
    if args.plot:
        plot_det(cal, args.plot)
        print(f"DET curve: {args.plot}")
    if args.json:
        doc = {"list": str(args.list_file), "classifier": str(clf_path), "stored_in": str(dest) if dest else None,
               **cal.to_dict()}
        write_text_atomic(args.json, json.dumps(doc, indent=1))
    return 0
