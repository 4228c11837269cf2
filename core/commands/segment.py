"""Cut the words out of a long recording of one word said again and again: each word found by its
energy above the noise floor (framed like the featurizer's frames) becomes a 1 s clip centred on the
word, written to OUTDIR/LABEL/SPEAKER_nohash_N.wav (Speech Commands layout, numbered after clips
already there, so `kws lists OUTDIR` and `kws dataset` take them). Prints one line per word (its
time in the recording, level and level above the noise) and a summary; --dry-run writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from core.commands.common import add_model_arguments
from core.data.segment import Framing, SegmentConfig, collect_words, file_chunks, safe_label
from core.fsutil import write_text_atomic
from core.progress import Progress


def add_arguments(p):
    p.add_argument("recording", metavar="LONG.wav", help="the recording (any audio format the app reads)")
    p.add_argument("--label", required=True, help="the word said in the recording (the folder name)")
    p.add_argument("-o", "--output", metavar="DIR", help="folder of word folders to add the clips to (required "
                   "unless --dry-run)")
    p.add_argument("--speaker", metavar="NAME",
                   help="speaker id in the file names (default: the recording's name); `kws lists` keeps "
                        "one speaker's clips in one split")
    p.add_argument("--dry-run", action="store_true", help="only print what would be cut")
    p.add_argument("--json", metavar="OUT", help="write every word's times and levels to this JSON file")
    d = SegmentConfig()
    g = p.add_argument_group("segmentation")
    g.add_argument("--on-db", type=float, default=d.on_db, help="a word starts this many dB above the noise floor")
    g.add_argument("--off-db", type=float, default=d.off_db, help="and lasts while it stays this many dB above it")
    g.add_argument("--merge-ms", type=float, default=d.merge_ms, help="quieter gaps shorter than this stay in a word")
    g.add_argument("--min-word-ms", type=float, default=d.min_word_ms, help="shorter sounds are not words")
    g.add_argument("--clip-s", type=float, default=d.clip_s, help="length of each clip in seconds")
    add_model_arguments(p, classifier=False)


def config_from(args) -> SegmentConfig:
    return SegmentConfig(on_db=args.on_db, off_db=args.off_db, merge_ms=args.merge_ms,
                         min_word_ms=args.min_word_ms, clip_s=args.clip_s, max_word_s=max(args.clip_s, 1.0))


def framing_from(args) -> Framing:
    """The framing of --featurizer, else of the bundled featurizer, else the default 16 kHz / 512 / 512."""
    from core import models

    path = args.featurizer or (models.DEFAULT_FEATURIZER if models.DEFAULT_FEATURIZER.exists() else None)
    return Framing.of(models.load_model(path)) if path else Framing()


def main(args) -> int:
    label = safe_label(args.label)
    if not args.dry_run and not args.output:
        raise SystemExit("kws segment: say where the clips go (-o DIR) or pass --dry-run")
    cfg = config_from(args)
    framing = framing_from(args)
    speaker = args.speaker or Path(args.recording).stem
    bar = Progress(0, "segment")
    try:
        found = collect_words(file_chunks(args.recording, framing, progress=bar), framing, cfg,
                              outdir=None if args.dry_run else args.output, label=label, speaker=speaker)
    finally:
        bar.close()
    words = [u for u, _ in found]
    paths = [p for _, p in found if p is not None]
    for i, u in enumerate(words):
        dest = f" -> {paths[i]}" if paths else ""
        print(f"{u.index + 1:4d}  {u.start_s:8.2f}-{u.end_s:.2f} s  centre {u.centre_s:8.3f} s  "
              f"level {u.level_db:6.1f} dB ({u.snr_db:+.1f} dB over the noise){dest}")
    what = "would write" if args.dry_run else "wrote"
    print(f"{len(words)} words of '{label}' found in {args.recording}; {what} {len(words)} clips of "
          f"{cfg.clip_s:g} s at {framing.sample_rate} Hz" + (f" to {Path(args.output) / label}" if paths else ""))
    if args.json:
        doc = {"recording": str(args.recording), "label": label, "config": cfg.to_dict(),
               "framing": {"sample_rate": framing.sample_rate, "window_size": framing.window_size,
                           "hop_length": framing.hop_length},
               "words": [dict(u.summary(), file=str(paths[i]) if paths else None) for i, u in enumerate(words)]}
        write_text_atomic(args.json, json.dumps(doc, indent=1))
    return 0
