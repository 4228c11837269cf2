"""Show what the voice activity detector does on a wav (ELL's vad_test): per frame the weighted
level, the noise floor and the 0/1 voice signal; prints the voice segments with start and end
times and the frames where the recurrent state would be reset. --plot draws spectrogram, level,
floor and signal into a PNG; --json writes every frame. Parameters: ELL's defaults, the VAD of a
classifier (--classifier), a JSON file (--params), then individual flags."""

from __future__ import annotations

import json

from core import models
from core.audio.wav import read_wav
from core.commands.vad_args import add_vad_param_arguments, vad_flags_given, vad_params_from_args
from core.errors import KwsError
from core.features.featurizer import featurize
from core.fsutil import write_text_atomic
from core.vad.analysis import trace_features
from core.vad.model import model_vad


def add_arguments(p):
    p.add_argument("wav", metavar="WAV", help="audio file")
    p.add_argument("--featurizer", "-f", metavar="F", help="featurizer model (default: the bundled one)")
    p.add_argument("--classifier", "-c", metavar="C",
                   help="start from the parameters of this classifier's VAD")
    p.add_argument("--plot", metavar="PNG", help="draw spectrogram, level, floor and signal into this PNG")
    p.add_argument("--json", metavar="OUT", help="write the per-frame trace and the segments as JSON")
    p.add_argument("--frames", action="store_true", help="print every frame (level, floor, signal)")
    add_vad_param_arguments(p)


def main(args) -> int:
    feat_path = args.featurizer or models.DEFAULT_FEATURIZER
    if args.featurizer is None and not models.DEFAULT_FEATURIZER.exists():
        raise KwsError("no bundled featurizer yet: pass --featurizer F")
    featurizer = models.load_model(feat_path)
    from core.data.dataset import featurizer_info

    info = featurizer_info(featurizer, feat_path)
    sr, hop = int(info["sample_rate"]), int(info["hop_length"])
    base = None
    if args.classifier:
        found = model_vad(models.load_model(args.classifier))
        if found is None:
            raise KwsError(f"{args.classifier}: the model has no VAD")
        base = found[0]
    params = vad_params_from_args(args, base)
    x, _ = read_wav(args.wav, sr)
    feats = featurize(featurizer, x)
    fd = hop / sr
    tr = trace_features(feats, params, fd)
    src = args.classifier if args.classifier else ("ELL defaults" if not vad_flags_given(args) else "flags")
    print(f"{args.wav}: {len(feats)} frames of {1000 * fd:g} ms ({len(x) / sr:.2f} s), "
          f"VAD parameters from {src}")
    if args.frames:
        print(f"{'frame':>6} {'time_s':>7} {'level':>10} {'floor':>10} signal")
        for i, (lv, fl, s) in enumerate(zip(tr.levels, tr.floors, tr.signals)):
            print(f"{i:6d} {i * fd:7.3f} {lv:10.5f} {fl:10.5f} {int(s)}")
    segs = tr.segments
    print(f"{len(segs)} voice segment(s), {int(tr.signals.sum())} of {len(feats)} frames on:")
    for a, b in segs:
        print(f"  {a:7.3f} s - {b:7.3f} s  ({1000 * (b - a):.0f} ms)")
    resets = tr.resets
    print(f"recurrent state reset after frame(s): {', '.join(map(str, resets.tolist())) or 'none'} "
          f"(reset_on {params.reset.reset_on}, hold_frames {params.reset.hold_frames})")
    if args.json:
        doc = {"wav": str(args.wav), "sample_rate": sr, **tr.to_dict()}
        write_text_atomic(args.json, json.dumps(doc, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        from pathlib import Path

        from core.vad.plot import plot_trace

        plot_trace(feats, tr, args.plot, title=f"{Path(args.wav).name}: VAD")
        print(f"wrote {args.plot}")
    return 0
