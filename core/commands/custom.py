"""A keyword spotter for your own word(s) from a few recordings: kws custom WORD[,WORD2...] --clips DIR
--noise-dir D -o OUTDIR. DIR holds your recordings of the word (DIR/*.wav, or DIR/WORD/*.wav for
each of several words): 1 s clips or longer takes, cut into words first. The recipe (core/train/
custom.py) adds the word spoken by every offline voice, other words and sound-alikes as `unknown`,
background noise, heavy augmentation of your clips, trains a small GRU and stores the threshold and
smoothing calibrated on held-out voices for --target-fa-per-hour. OUTDIR gets featurizer.kwm,
classifier.kwm and categories.txt (classes: background, unknown, the words); try it with
`kws run -f OUTDIR/featurizer.kwm -c OUTDIR/classifier.kwm` or in the live view."""

from __future__ import annotations

from core.progress import Progress
from core.train.config import TARGET_FRAMES
from core.train.custom import CustomConfig, build_custom


def add_arguments(p):
    d = CustomConfig()
    p.add_argument("words", metavar="WORD[,WORD2...]", help="the keyword(s)")
    p.add_argument("--clips", required=True, metavar="DIR", help="your recordings of the word(s)")
    p.add_argument("--noise-dir", required=True, metavar="D",
                   help="background noise recordings (e.g. ../shared/data/background_noise)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="where the models go")
    p.add_argument("--featurizer", "-f", metavar="F", help="featurizer model (default: the bundled one)")
    p.add_argument("--negatives", metavar="DIR", help="real recordings of other words (DIR/word/*.wav), as unknown")
    p.add_argument("--teacher", default="", metavar="MODEL", help="a model whose soft targets guide training")
    p.add_argument("--synth-per-word", type=int, default=d.synth_per_word, help="synthetic takes of each keyword")
    p.add_argument("--negative-takes", type=int, default=d.negative_takes,
                   help="synthetic takes of each other word and sound-alike")
    p.add_argument("--user-copies", type=int, default=d.user_copies, help="augmented copies of each of your clips")
    p.add_argument("--reversed-copies", type=int, default=d.reversed_copies,
                   help="augmented copies of each of your clips played backwards, as unknown (0: none)")
    p.add_argument("--partial-copies", type=int, default=d.partial_copies, metavar="N",
                   help="a word of two syllables or more: augmented copies of each of your clips cut off "
                        "part-way through the word, as unknown ('ha-' is not 'happy')")
    p.add_argument("--partial-synth", type=float, default=d.partial_synth, metavar="SHARE",
                   help="a word of two syllables or more: share of its synthetic takes also cut off part-way")
    p.add_argument("--partial-others", type=float, default=d.partial_others, metavar="SHARE",
                   help="share of the other words' takes cut off part-way, as unknown")
    p.add_argument("--quiet-unknown", type=float, default=d.quiet_unknown, metavar="W",
                   help="weight of 'no word' at other words' rows' likeliest frame, not only at their end (0: off)")
    p.add_argument("--background-rows", type=int, default=d.background_rows, help="rows of pure noise")
    p.add_argument("--engines", metavar="E,...", help="speech engines to use (default: every one installed)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    p.add_argument("--members", type=int, default=d.members,
                   help="detectors trained from as many seeds, their probabilities averaged in one model")
    p.add_argument("--target-frame", choices=TARGET_FRAMES, default=d.target_frame,
                   help="frames that learn the word: last (of each 1 s row) or peak (on the word, then let go)")
    p.add_argument("--init", default=d.init, metavar="MODEL",
                   help="start from this model's recurrent layers (trained on many real speakers; a new output "
                        "layer): 'default' = assets/custom_init.kwm, '' = train from scratch")
    p.add_argument("--hidden-size", type=int, default=d.hidden_size, help="GRU units per layer (from scratch)")
    p.add_argument("--num-layers", type=int, default=d.num_layers, help="GRU layers (from scratch)")
    p.add_argument("--real-held-out-percent", type=float, default=d.real_held_out_percent, metavar="P",
                   help="speakers of --negatives kept out of training for calibration")
    p.add_argument("--target-fa-clips", type=float, default=d.target_fa_clips,
                   help="share of held-out other words' clips the stored threshold may fire on")
    p.add_argument("--target-fa-per-hour", type=float, default=d.target_fa_per_hour,
                   help="false accepts per hour the stored threshold may allow")
    p.add_argument("--calibration-minutes", type=float, default=d.calibration_minutes,
                   help="length of the held-out stream the threshold is chosen on")
    p.add_argument("--jobs", "-j", type=int, default=d.jobs, help="parallel processes for speech and features")
    p.add_argument("--seed", type=int, default=0, help="random seed")


def main(args) -> int:
    cfg = CustomConfig(synth_per_word=args.synth_per_word, negative_takes=args.negative_takes,
                       user_copies=args.user_copies, reversed_copies=args.reversed_copies,
                       partial_copies=args.partial_copies, partial_synth=args.partial_synth,
                       partial_others=args.partial_others,
                       quiet_unknown=args.quiet_unknown,
                       background_rows=args.background_rows,
                       engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()) if args.engines else None,
                       hidden_size=args.hidden_size, num_layers=args.num_layers, epochs=args.epochs,
                       members=args.members, init=args.init,
                       target_frame=args.target_frame,
                       teacher=args.teacher, target_fa_per_hour=args.target_fa_per_hour,
                       calibration_minutes=args.calibration_minutes, seed=args.seed,
                       target_fa_clips=args.target_fa_clips, real_held_out_percent=args.real_held_out_percent,
                       jobs=args.jobs)
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    bar: list[Progress] = []

    def stage(text: str) -> None:
        if bar:
            bar.pop().close()
        print(f"{text}...", flush=True)

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(Progress(total, "  "))
        bar[0](done, total)

    try:
        r = build_custom(words, args.clips, args.output, noise_dir=args.noise_dir, featurizer_path=args.featurizer,
                         negatives_dir=args.negatives, config=cfg, stage=stage, progress=progress)
    finally:
        if bar:
            bar.pop().close()
    head, detail = r.summary()
    print(head)
    print(detail)
    for path in r.outputs.values():
        print(f"wrote {path}")
    return 0
