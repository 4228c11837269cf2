"""`kws eval --modes reset,continuous,vad` (or --compare): the three modes side by side in one run,
on the list and, with --stream, on a stream assembled from the clips (gaps + noise)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.evaluate.passrate import attribution_text, skipped_summary
from core.evaluate.stream import detection_metrics
from core.fsutil import write_text_atomic
from core.progress import Progress
from core.vad.compare import (
    MODES,
    TITLES,
    compare_on_list,
    compare_on_stream,
    gap_recovered,
    mode_graphs,
    parse_modes,
)
from core.vad.params import load_params


def add_arguments(p) -> None:
    g = p.add_argument_group("modes side by side (the ELL table)")
    g.add_argument("--modes", metavar="LIST", help=f"comma list of {', '.join(MODES)}: reset per clip, "
                   "continuous, continuous + VAD (the model's own, else one added)")
    g.add_argument("--compare", action="store_true",
                   help="all three modes (same as --modes reset,continuous,vad)")
    g.add_argument("--vad-params", metavar="JSON",
                   help="VAD parameters for the vad mode (e.g. from kws vad-tune); replaces the model's own")


def wanted(args) -> tuple[str, ...] | None:
    if getattr(args, "compare", False):
        return MODES
    return parse_modes(args.modes) if getattr(args, "modes", None) else None


def _pct(ok: int, n: int) -> str:
    return f"{ok:4d}/{n:<4d} {100 * ok / n:5.1f} %" if n else "-"


def run(args, featurizer, classifier, cats, clips, modes: tuple[str, ...], order: str) -> int:
    """`clips` are in playing order already (`order` says how it was made: shuffled or the list's)."""
    params = load_params(args.vad_params) if args.vad_params else None
    graphs = mode_graphs(classifier, featurizer, params, args.featurizer)
    print(f"modes: {', '.join(TITLES[m] for m in modes)}; VAD: {graphs.source}; clip order: {order}")
    out: dict = {"list": str(args.list_file), "decision": args.decision, "attribution": args.attribution,
                 "vad_source": graphs.source,
                 "vad_params": graphs.params.to_dict(), "modes": list(modes), "order": order}

    bars: dict[str, Progress] = {}

    def progress(mode, k, res):
        if mode not in bars:
            bars[mode] = Progress(len(clips), TITLES[mode])
        bars[mode](k)

    rates = compare_on_list(featurizer, graphs, cats, clips, modes, decision=args.decision,
                            attribution=args.attribution, progress=progress)
    for b in bars.values():
        b.close()
    n = len(next(iter(rates.values())).results)
    skipped = next(iter(rates.values())).skipped
    if skipped:
        print(skipped_summary(skipped), file=sys.stderr)
    out["list_results"] = {m: r.to_dict() for m, r in rates.items()}

    stream_cmp = None
    if args.stream:
        from core.audio.sources import list_wavs
        from core.vad.streams import assembled_stream, sample_rate_of

        noise = list_wavs(args.noise_dir) if args.noise_dir else None
        sr = sample_rate_of(featurizer, args.featurizer)
        st = assembled_stream(featurizer, clips, sr, noise_files=noise, snr_db=args.snr_db, seed=args.seed)
        stream_cmp = compare_on_stream(st, graphs, cats, modes)
        ignore = tuple(s for s in args.ignore.split(",") if s)
        det = {m: detection_metrics(stream_cmp.probs[m], st.frame_duration_s, st.events, st.duration_s, cats,
                                    args.threshold, args.smoothing, ignore) for m in modes}
        out["stream"] = {"name": st.name, "duration_s": st.duration_s, "words": len(st.labels),
                         "modes": {m: {"accuracy": stream_cmp.accuracy[m].rate,
                                       "correct": stream_cmp.accuracy[m].correct,
                                       "resets": stream_cmp.resets[m], **det[m].to_dict()} for m in modes}}

    head = f"\n{'mode':<18} {'clips (list)':>18}"
    if stream_cmp:
        head += f"   {'stream accuracy':>18} {'hits':>5} {'misses':>6} {'FA/h':>7} {'resets':>6}"
    print(head)
    for m in modes:
        r = rates[m]
        line = f"{TITLES[m]:<18} {_pct(r.passed, len(r.results)):>18}"
        if stream_cmp:
            a, d = stream_cmp.accuracy[m], out["stream"]["modes"][m]
            line += (f"   {_pct(a.correct, a.total):>18} {d['hits']:5d} {d['misses']:6d} "
                     f"{d['fa_per_hour']:7.1f} {stream_cmp.resets[m]:6d}")
        print(line)
    if set(MODES) <= set(modes):
        rec = gap_recovered(rates["reset"].rate, rates["continuous"].rate, rates["vad"].rate)
        msg = (f"the VAD wins back {100 * rec:.0f} % of the continuous -> reset gap on the list"
               if rec is not None else "no continuous -> reset gap on the list")
        out["gap_recovered_list"] = rec
        if stream_cmp:
            acc = {m: stream_cmp.accuracy[m].rate for m in modes}
            rs = gap_recovered(acc["reset"], acc["continuous"], acc["vad"])
            out["gap_recovered_stream"] = rs
            msg += f", {100 * rs:.0f} % on the stream" if rs is not None else ""
        print(msg)
    if stream_cmp:
        st = stream_cmp.stream
        print(f"stream: {st.duration_s / 60:.1f} min, {len(st.labels)} words, {st.name}"
              f"{' (' + Path(args.noise_dir).name + ')' if args.noise_dir else ''}; hits/FA at threshold "
              f"{args.threshold}, smoothing {args.smoothing}; reset = restart at each clip's start")
    print(f"({n} clips, {args.decision} frame per clip; clip order: {order}; {attribution_text(args.attribution)})")
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=1))
    return 0
