"""Evaluate a classifier on a list of labelled wav files (ELL's eval_test): per clip the best
frame (or the mean) decides; --reset resets the model per clip, otherwise the list is one
continuous stream. Prints a running pass rate, the final pass rate, per-class accuracy, a
confusion matrix and the average processing time per frame. --stream also measures detection on a
long stream assembled from the clips, silence gaps and background noise (hits, misses, FA/h).
--compare (or --modes) runs reset per clip, continuous and continuous + VAD side by side.

A continuous stream over a list sorted by word flatters the model (each clip follows clips of the
same word), so the continuous and VAD modes play the clips in a shuffled order (seeded by --seed;
--no-shuffle keeps the list's order); the output says which. In those modes a word the model is
still saying when the next clip starts counts for the clip it began in (--attribution frame: for
the clip each frame lies in, as ELL's eval_test). Clips that cannot be read are
skipped, counted and the first few named."""

from __future__ import annotations

import json
import sys

from core.commands import eval_modes
from core.commands.common import add_model_arguments, resolve_models, time_text
from core.evaluate.passrate import (
    ATTRIBUTIONS,
    DECISIONS,
    attribution_text,
    confusion_text,
    evaluate_clips,
    play_order,
    read_list,
    skipped_summary,
)
from core.fsutil import write_text_atomic
from core.pipeline import KeywordSpotter, detector_settings


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--list-file", "-l", required=True, help="wav paths relative to the list's folder")
    p.add_argument("--reset", "-r", action="store_true", help="reset the model state before each clip")
    p.add_argument("--decision", choices=DECISIONS, default="best", help="best frame (ELL) or mean over frames")
    p.add_argument("--attribution", choices=ATTRIBUTIONS, default="onset",
                   help="continuous: a word carried over from one clip into the next counts for the clip it began in "
                        "(onset) or each frame for the clip it lies in (frame: ELL's eval_test)")
    p.add_argument("--max-tests", type=int, metavar="N", help="evaluate only the first N clips of the list")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                   help="continuous and VAD modes: play the clips in the list's order (by default shuffled, "
                        "so that clips of one word do not follow each other)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip-order shuffle and of the --stream")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no per-clip lines")
    s = p.add_argument_group("streaming detection (--stream)")
    s.add_argument("--stream", action="store_true", help="also score detection on an assembled long stream")
    s.add_argument("--noise-dir", help="background noise wavs mixed under the stream")
    s.add_argument("--snr-db", type=float, default=20.0, help="speech-to-noise ratio of the stream in dB")
    s.add_argument("--threshold", type=float,
                   help="a detection needs a probability above this (default: the model's stored one, else 0.6)")
    s.add_argument("--smoothing", type=int, metavar="N",
                   help="average the last N frames, 0: off (default: the model's stored one, else 0)")
    s.add_argument("--ignore", default="", help="labels not scored (e.g. background_noise)")
    eval_modes.add_arguments(p)


def main(args) -> int:
    featurizer, classifier, cats = resolve_models(args)
    if classifier is None:
        raise SystemExit("kws eval: needs a classifier")
    settings = detector_settings(classifier, args.threshold, args.smoothing)
    args.threshold, args.smoothing = settings.threshold, settings.smoothing  # what every mode below scores with
    clips = read_list(args.list_file)[: args.max_tests]
    modes = eval_modes.wanted(args)
    continuous = any(m != "reset" for m in modes) if modes else not args.reset
    clips, order = play_order(clips, continuous=continuous, shuffle=args.shuffle, seed=args.seed)
    if modes:
        return eval_modes.run(args, featurizer, classifier, cats, clips, modes, order)
    spotter = KeywordSpotter(featurizer, classifier)

    def progress(k, res):
        if not args.quiet:
            r = res.results[-1]
            status = "PASSED" if r.passed else "FAILED"
            got = "" if r.passed else f" (got {r.predicted})"
            print(f"{status} {100 * res.rate:6.2f}%: {r.expected}{got} {r.path}", flush=True)

    res = evaluate_clips(spotter, cats, clips, reset=args.reset, decision=args.decision,
                         attribution=args.attribution, progress=progress)
    mode = "reset per clip" if args.reset else "continuous"
    how = "" if args.reset else f"; {attribution_text(args.attribution)}"
    print(f"\n{res.passed} passed, {len(res.results) - res.passed} failed, pass rate of {100 * res.rate:.2f} % "
          f"({mode}, {args.decision} frame; clip order: {order}{how})")
    if res.skipped:
        print(skipped_summary(res.skipped), file=sys.stderr)
    print("\nper-class accuracy:")
    for label, (ok, total) in sorted(res.per_class().items()):
        print(f"  {label:<20} {ok:4d}/{total:<4d} {100 * ok / total:6.1f}%")
    print("\nconfusion matrix (rows expected, columns predicted by index):")
    print(confusion_text(res))
    out = {"list": str(args.list_file), "mode": mode, "decision": args.decision, "order": order,
           "attribution": None if args.reset else args.attribution,
           **res.to_dict()}
    if args.stream:
        from pathlib import Path

        from core.audio.sources import list_wavs
        from core.evaluate.stream import assemble_stream, stream_metrics

        noise = list_wavs(args.noise_dir) if args.noise_dir else None
        stream = assemble_stream(clips, spotter.sample_rate, noise_files=noise, snr_db=args.snr_db, seed=args.seed)
        ignore = tuple(s for s in args.ignore.split(",") if s)
        m = stream_metrics(spotter, cats, stream, args.threshold, args.smoothing, ignore)
        print(f"\nstream of {stream.duration_s / 60:.1f} min, {len(stream.events)} words"
              f"{', noise ' + Path(args.noise_dir).name + f' at {args.snr_db:g} dB SNR' if noise else ''}: "
              f"{m.hits} hits, {m.misses} misses, {m.false_accepts} false accepts "
              f"({m.fa_per_hour:.1f} FA/h) at {settings.source}")
        out["stream"] = dict(m.to_dict(), threshold=settings.threshold, smoothing=settings.smoothing)
    print(f"\nAverage processing time: {time_text(res.time_per_frame_s)}")
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=1))
    return 0
