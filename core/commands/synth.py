"""Speak keywords with the offline speech engines into a Speech Commands style folder:
DIR/word/<engine>-<voice>_nohash_<n>.wav, 16 kHz mono, trimmed of silence and centred in 1 s.
Engines (--engines, default every one found): espeak (espeak-ng voices x variants), flite, festival,
piper; each voice x --rates x --pitches (x --takes for Piper). --per-word N picks N of them per word
at random (seeded), spread over the engines. The speaker id is engine + voice, so `kws lists` keeps
each voice in one split. Mix with real recordings by listing both folders: `kws lists REAL_DIR DIR -o LISTS_DIR`."""

from __future__ import annotations

import json
import sys

from core.data.lists import check_output_dir
from core.data.speech import ENGINE_NAMES, engine
from core.data.synth import SynthConfig, check_words, engine_voices, open_engines, plan, synthesize
from core.errors import DataError
from core.fsutil import write_text_atomic
from core.progress import Progress


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from None


def add_arguments(p):
    p.add_argument("--words", metavar="W,W,...", help="words to speak, comma-separated (required)")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder of word sub-folders (required)")
    p.add_argument("--engines", "-e", metavar="E,...",
                   help=f"speech engines among {','.join(ENGINE_NAMES)} (default: every one installed)")
    p.add_argument("--per-word", type=int, metavar="N",
                   help="N random engine/voice/rate/pitch combinations per word (default: all)")
    p.add_argument("--rates", default="0.8,0.9,1,1.12,1.25", metavar="R,...",
                   help="speaking-rate factors, 1 = the voice's own pace (0.8,0.9,1,1.12,1.25)")
    p.add_argument("--pitches", default="0.85,0.92,1,1.08,1.17", metavar="P,...",
                   help="pitch (f0) factors, 1 = the voice's own (0.85,0.92,1,1.08,1.17)")
    p.add_argument("--takes", type=int, default=3, metavar="N", help="takes per setting for Piper, which samples (3)")
    p.add_argument("--voices", metavar="V,...",
                   help="only these voices, any engine's (e.g. en-us,slt,joe; see --list-voices)")
    p.add_argument("--no-variants", action="store_true", help="espeak-ng: plain voices only, no +variant")
    p.add_argument("--jobs", "-j", type=int, default=2, metavar="N", help="parallel synthesizer processes (2)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the --per-word choice and Piper's takes (0)")
    p.add_argument("--list-voices", action="store_true",
                   help="print the engines found, what is missing, and every voice, then exit")


def _report_engines(cfg: SynthConfig, file=sys.stderr):
    engines, missing = open_engines(cfg)
    for e in engines:
        print(f"engine {e.name}: {len(engine_voices(e, cfg))} voices ({e.description})", file=file)
    for name, why in missing.items():
        print(f"engine {name}: missing: {why}", file=file)
    return engines, missing


def main(args) -> int:
    cfg_args = dict(engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()) if args.engines else None,
                    rates=_floats(args.rates, "--rates"), pitches=_floats(args.pitches, "--pitches"),
                    takes=args.takes, use_variants=not args.no_variants,
                    voices=tuple(v.strip() for v in args.voices.split(",")) if args.voices else None, seed=args.seed)
    if args.list_voices:
        for name in SynthConfig(**cfg_args).engines or ENGINE_NAMES:
            e = engine(name)
            try:
                why, voices = e.missing(), e.voices()
            except DataError as err:
                why = str(err)
            if why:
                print(f"{name}: missing: {why}")
                continue
            print(f"{name}: {len(voices)} voices ({e.description})")
            if name == "espeak":
                plain = [v for v in voices if "+" not in v]
                variants = sorted({v.split("+", 1)[1] for v in voices if "+" in v})
                print(f"  {' '.join(plain)}\n  {len(variants)} variants: {' '.join(variants)}")
            else:
                print("  " + " ".join(f"{v} (pitch by {e.pitch_control(v)})" for v in voices))
            e.close()
        return 0
    if not args.words or not args.output:
        raise DataError("kws synth needs --words W,W,... and -o DIR")
    words = check_words(args.words.split(","))
    cfg = SynthConfig(per_word=args.per_word, **cfg_args)
    engines, missing = _report_engines(cfg)
    try:
        todo = plan(words, cfg, engines)
        out = check_output_dir(args.output)
        with Progress(len(todo), "synth") as progress:
            result = synthesize(words, out, cfg, jobs=args.jobs, engines=engines, progress=progress)
    finally:
        for e in engines:
            e.close()
    per_engine = {}
    for u in todo:
        per_engine[u.engine] = per_engine.get(u.engine, 0) + 1
    doc = {"format": "kwsgui-synth", "words": words, "per_word": cfg.per_word,
           "engines": {e.name: engine_voices(e, cfg) for e in engines}, "missing": missing,
           "rates": cfg.rates, "pitches": cfg.pitches, "takes": cfg.takes, "variants": cfg.use_variants,
           "seed": cfg.seed, "sample_rate": cfg.sample_rate, "planned": per_engine,
           "ms_per_utterance": {n: round(t.ms_per_utterance, 1) for n, t in result.timing.items()},
           "written": len(result.written), "skipped": [r for _, r in result.skipped]}
    write_text_atomic(out / "synth.json", json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(result.written)} clips of {len(words)} words to {out}")
    for name, t in result.timing.items():
        print(f"  {name}: {per_engine.get(name, 0)} planned, {t.ms_per_utterance:.0f} ms per utterance "
              f"(with process start and voice loading; {args.jobs} in parallel)")
    if result.skipped:
        print(f"skipped {len(result.skipped)}:", file=sys.stderr)
        for _, reason in result.skipped[:10]:
            print(f"  {reason}", file=sys.stderr)
        if len(result.skipped) > 10:
            print(f"  ... and {len(result.skipped) - 10} more (see {out / 'synth.json'})", file=sys.stderr)
    return 0 if result.written else 1
