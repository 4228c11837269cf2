"""Speak keywords with espeak-ng into a Speech Commands style folder: DIR/word/<speaker>_nohash_<n>.wav,
16 kHz mono, trimmed of silence and centred in 1 s. Voices: every working English espeak-ng voice
x its variants x --speeds x --pitches (about 7000 per word); --per-word N picks N of them at
random (seeded). The speaker id is voice + variant, so `kws lists` keeps each voice in one split.
Mix with real recordings by listing both folders: `kws lists REAL_DIR DIR -o LISTS_DIR`."""

from __future__ import annotations

import json
import sys

from core.data.lists import check_output_dir
from core.data.synth import SynthConfig, check_words, english_voices, plan, synthesize, variants
from core.errors import DataError
from core.fsutil import write_text_atomic
from core.progress import Progress


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from None


def add_arguments(p):
    p.add_argument("--words", "-w", metavar="W,W,...", help="words to speak, comma-separated (required)")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder of word sub-folders (required)")
    p.add_argument("--per-word", type=int, metavar="N",
                   help="N random voice/variant/speed/pitch combinations per word (default: all)")
    p.add_argument("--speeds", default="140,175,210", metavar="WPM,...", help="speaking rates (140,175,210)")
    p.add_argument("--pitches", default="35,50,65", metavar="P,...", help="pitches 0-99 (35,50,65)")
    p.add_argument("--voices", metavar="CODE,...",
                   help="only these voices (e.g. en-us,en-gb; see --list-voices)")
    p.add_argument("--no-variants", action="store_true", help="plain voices only, no +variant")
    p.add_argument("--jobs", "-j", type=int, default=2, metavar="N", help="parallel espeak-ng processes (2)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the --per-word choice (0)")
    p.add_argument("--list-voices", action="store_true",
                   help="print the working voices and variants, then exit")


def main(args) -> int:
    if args.list_voices:
        for v in english_voices():
            print(f"{v.code:16s} {v.file:22s} {v.name}")
        print(f"{len(variants())} variants: {' '.join(variants())}")
        return 0
    if not args.words or not args.output:
        raise DataError("kws synth needs --words W,W,... and -o DIR")
    words = check_words(args.words.split(","))
    cfg = SynthConfig(per_word=args.per_word, speeds_wpm=_ints(args.speeds, "--speeds"),
                      pitches=_ints(args.pitches, "--pitches"), use_variants=not args.no_variants,
                      voices=tuple(v.strip() for v in args.voices.split(",")) if args.voices else None,
                      seed=args.seed)
    out = check_output_dir(args.output)
    total = len(plan(words, cfg))
    with Progress(total, "synth") as progress:
        result = synthesize(words, out, cfg, jobs=args.jobs, progress=progress)
    doc = {"format": "kwsgui-synth", "words": words, "per_word": cfg.per_word,
           "speeds_wpm": cfg.speeds_wpm, "pitches": cfg.pitches, "variants": cfg.use_variants,
           "seed": cfg.seed, "sample_rate": cfg.sample_rate,
           "voices": [v.file for v in english_voices() if cfg.voices is None or v.code in cfg.voices],
           "written": len(result.written), "skipped": [r for _, r in result.skipped]}
    write_text_atomic(out / "synth.json", json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(result.written)} clips of {len(words)} words to {out}")
    if result.skipped:
        print(f"skipped {len(result.skipped)}:", file=sys.stderr)
        for _, reason in result.skipped[:10]:
            print(f"  {reason}", file=sys.stderr)
        if len(result.skipped) > 10:
            print(f"  ... and {len(result.skipped) - 10} more (see {out / 'synth.json'})", file=sys.stderr)
    return 0 if result.written else 1
