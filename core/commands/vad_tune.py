"""Tune the voice activity detector automatically: search its seven parameters (and with
--search-hold / --search-reset-on the reset rule) to maximise keyword accuracy on continuous
streams assembled from real clips with silence gaps and background noise at chosen SNRs
(--objective accuracy), or the match between VAD segments and the spoken words (--objective f1).
Starts from the classifier's own VAD, else ELL's defaults (or --params / flags). Prints the best
parameters with the numbers before and after, beside continuous (no VAD) and reset-per-clip;
writes the parameters as JSON for `kws add-vad --params`, `kws eval --vad-params` and the GUI.
Seeded: the same inputs give the same result."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from core import models
from core.audio.sources import list_wavs
from core.commands.common import add_model_arguments, resolve_models
from core.commands.vad_args import add_vad_param_arguments, vad_flags_given, vad_params_from_args
from core.errors import DataError, KwsError
from core.evaluate.passrate import labelled_clips, read_list
from core.fsutil import write_text_atomic
from core.progress import Progress
from core.vad.compare import gap_recovered
from core.vad.model import model_vad
from core.vad.params import save_params
from core.vad.streams import sample_rate_of
from core.vad.tune import HOLD_MAX, OBJECTIVES, prepare, tune_vad


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{what} takes comma-separated numbers, got {text!r}") from None
    if not vals or not all(np.isfinite(vals)):
        raise ValueError(f"{what} takes comma-separated finite numbers, got {text!r}")
    return vals


def add_arguments(p):
    add_model_arguments(p)
    src = p.add_argument_group("clips (one of)")
    src.add_argument("--list-file", "-l", metavar="L", help="list of labelled wavs (kws lists / ELL lists)")
    src.add_argument("--data-dir", metavar="D", help="Speech Commands layout: one folder of wavs per label")
    src.add_argument("--max-clips", type=int, metavar="N", help="use N clips (a seeded random choice)")
    s = p.add_argument_group("streams")
    s.add_argument("--noise-dir", metavar="D", help="background noise wavs mixed under the streams")
    s.add_argument("--snr-db", default="20,10", metavar="LIST",
                   help="one stream per SNR in dB (default 20,10; needs --noise-dir)")
    s.add_argument("--gap", default="0.5,1.5", metavar="MIN,MAX", help="silence between clips in s")
    s.add_argument("--back-to-back", action="store_true",
                   help="also score the clips back to back (no gaps, shuffled with --seed as kws eval does)")
    t = p.add_argument_group("search")
    t.add_argument("--objective", choices=OBJECTIVES, default="accuracy",
                   help="keyword accuracy on the streams, or segmentation F1 against the spoken words")
    t.add_argument("--trials", type=int, default=200, help="parameter settings to try (default 200)")
    t.add_argument("--seed", type=int, default=0, help="random seed of the search, the clip choice and the streams")
    t.add_argument("--search-hold", action="store_true", help="also search hold_frames (0-20)")
    t.add_argument("--only-hold", action="store_true",
                   help="keep the starting parameters and choose only hold_frames (0-20, ties: the shortest)")
    t.add_argument("--search-reset-on", action="store_true",
                   help="also search reset_on (offset: at word ends, ELL; onset: at word starts)")
    t.add_argument("--backend", choices=("auto", "compiled", "interpreter"), default="auto",
                   help="how the classifier runs (auto: compiled when possible)")
    p.add_argument("-o", "--output", required=True, metavar="JSON", help="write the best parameters here")
    p.add_argument("--json", metavar="OUT", help="write the full report (every trial) here")
    add_vad_param_arguments(p, title="starting point (default: the classifier's VAD, else ELL's defaults)")


def _clips(args) -> list[tuple[Path, str]]:
    if bool(args.list_file) == bool(args.data_dir):
        raise KwsError("give the clips with --list-file L or --data-dir D (one of them)")
    if args.list_file:
        clips = read_list(args.list_file)
    else:
        if not Path(args.data_dir).is_dir():
            raise DataError(f"{args.data_dir}: no such folder")
        clips = labelled_clips(args.data_dir)
        if not clips:
            raise DataError(f"{args.data_dir}: no wavs in label folders")
    if args.max_clips is not None:
        if args.max_clips < 1:
            raise ValueError(f"--max-clips must be at least 1, got {args.max_clips}")
        idx = np.random.default_rng(args.seed).permutation(len(clips))[: args.max_clips]
        clips = [clips[i] for i in sorted(idx)]
    return clips


def _sha256(path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _pct(x) -> str:
    return f"{100 * x:6.1f} %" if x is not None else "       -"


def main(args) -> int:
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    featurizer, classifier, cats = resolve_models(args)
    if classifier is None and args.objective == "accuracy":
        raise KwsError("the accuracy objective needs a classifier (or use --objective f1)")
    snrs = _floats(args.snr_db, "--snr-db")
    gap = _floats(args.gap, "--gap")
    if len(gap) != 2 or not 0 <= gap[0] <= gap[1]:
        raise ValueError(f"--gap takes MIN,MAX seconds with 0 <= MIN <= MAX, got {args.gap!r}")
    clips = _clips(args)
    noise = list_wavs(args.noise_dir) if args.noise_dir else None
    own = model_vad(classifier) if classifier is not None else None
    start = vad_params_from_args(args, own[0] if own else None)
    start_src = ("given" if vad_flags_given(args) else "the classifier's VAD" if own else "ELL's defaults")
    sr = sample_rate_of(featurizer, args.featurizer)

    prog = Progress(len(snrs) if noise else 1, "featurize streams")
    data = prepare(featurizer, classifier, cats, clips, sample_rate=sr, noise_files=noise, snrs=snrs,
                   gap_s=(gap[0], gap[1]), seed=args.seed, back_to_back=args.back_to_back,
                   backend=args.backend, progress=prog)
    prog.close()
    names = ", ".join(s.name for s in data.streams)
    trials = HOLD_MAX + 2 if args.only_hold else args.trials
    print(f"tuning the VAD on {len(data.streams)} stream(s) of {len(clips)} clips ({names}): "
          f"{data.n_words} words, {sum(s.n_frames for s in data.streams)} frames of "
          f"{1000 * data.frame_duration_s:g} ms; objective {args.objective}, {trials} trials, "
          f"seed {args.seed}; start: {start_src}", flush=True)
    prog = Progress(trials, "vad-tune")
    try:
        res = tune_vad(data, start, trials=args.trials, seed=args.seed, objective=args.objective,
                       search_hold=args.search_hold, search_reset_on=args.search_reset_on,
                       only_hold=args.only_hold, progress=prog)
    finally:
        prog.close()

    rows = []
    if "continuous" in res.baselines:
        rows.append(("continuous (no VAD)", res.baselines["continuous"]))
    rows += [(f"start ({start_src})", res.start.score), ("tuned", res.best.score)]
    if "reset" in res.baselines:
        rows.append(("reset per clip", res.baselines["reset"]))
    print(f"\n{'':<32} {'accuracy':>9} {'seg. F1':>8} {'resets':>7}")
    for name, sc in rows:
        f1 = f"{sc.f1:8.3f}" if sc.f1 is not None else "       -"
        print(f"{name:<32} {_pct(sc.accuracy):>9} {f1} {sc.resets:7d}")
    if res.baselines:
        r, c = res.baselines["reset"].accuracy, res.baselines["continuous"].accuracy
        g0, g1 = gap_recovered(r, c, res.start.score.accuracy), gap_recovered(r, c, res.best.score.accuracy)
        if g1 is not None:
            print(f"the tuned VAD wins back {100 * g1:.0f} % of the continuous -> reset gap "
                  f"(start: {100 * g0:.0f} %)")
    print("\nbest parameters:")
    for k, v in res.best.params.to_dict().items():
        print(f"  {k:<16} {v:.6g}" if isinstance(v, float) else f"  {k:<16} {v}")
    info = {k: v for k, v in res.summary().items() if k != "best"}
    info.update({"clips": len(clips), "streams": [s.name for s in data.streams],
                 "best": res.best.score.to_dict(), "featurizer": str(args.featurizer or "bundled"),
                 "classifier": str(args.classifier or "bundled") if classifier is not None else None,
                 "classifier_sha256": _sha256(args.classifier or models.DEFAULT_CLASSIFIER)
                 if classifier is not None else None,
                 "command": "kws " + " ".join(sys.argv[1:]) if sys.argv and "vad-tune" in sys.argv else None})
    save_params(args.output, res.best.params, info)
    print(f"wrote {args.output}" + (" (cancelled early: best so far)" if res.cancelled else ""))
    if args.json:
        report = res.summary() | {"history": [{"params": t.params.to_dict(), **t.score.to_dict()}
                                              for t in res.trials]}
        write_text_atomic(args.json, json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0
