"""Featurize the wavs of a list into a dataset of rows for training (ELL's make_dataset).
Each row is --window-frames feature frames (a new row every --shift-frames); a trailing part
longer than a quarter window is padded to a full row. Unreadable files are skipped and reported.
Noise mixing is SNR-based (--noise-fraction of the clips, SNR drawn from --snr-db); with
--augment-copies K each clip appears clean plus K augmented copies. Give --list-file L with
-o OUT.npz for one list, or --lists DIR with -o OUTDIR to make training.npz, validation.npz and
testing.npz from the lists in DIR: then augmentation and background rows go to training.npz
only, and the noise recordings are cut in time (first 80% for training, next 10% validation,
last 10% testing) so no stretch of noise is shared between splits. The three files replace the
folder's old ones as one set (core.outputs): a kill leaves all old or all new files, and a split
without a list leaves no old file of that name behind."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from core.data.augment import AugmentConfig, NoiseBank, parse_range
from core.data.dataset import DatasetConfig, build_dataset, featurizer_info, save_dataset
from core.data.lists import CATEGORIES, check_output_dir, read_list
from core.errors import DataError
from core.outputs import clean_stale, output_set
from core.progress import Progress

NOISE_REGIONS = {"training": (0.0, 0.8), "validation": (0.8, 0.9), "testing": (0.9, 1.0)}


def add_arguments(p):
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--list-file", "-l", metavar="L", help="list of wavs (kws lists output)")
    src.add_argument("--lists", metavar="DIR",
                     help="folder with training/validation/testing_list.txt: make all three datasets")
    p.add_argument("--featurizer", "-f", required=True, metavar="F", help="featurizer model (.kwm or .ell)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output .npz (with --lists: an output folder)")
    p.add_argument("--categories", "-cat", metavar="T",
                   help="categories file (default: categories.txt beside the list)")
    p.add_argument("--window-frames", "-wf", type=int, default=40, metavar="N", help="frames per row (40)")
    p.add_argument("--shift-frames", "-s", type=int, default=40, metavar="N", help="frames between rows (40)")
    p.add_argument("--sample-rate", type=int, metavar="SR",
                   help="audio rate for a featurizer that does not state one")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="worker processes (1)")
    p.add_argument("--seed", type=int, default=0, help="random seed of every augmentation (0)")
    t = p.add_argument_group("teacher (soft targets for distillation: kws train --teacher-mode dataset)")
    t.add_argument("--teacher", metavar="MODEL", help="a trained model (.ell, .onnx, .kwm) that labels every row")
    t.add_argument("--teacher-featurizer", default="", metavar="F",
                   help="the teacher's own featurizer, when it differs from --featurizer (it hears the same audio)")
    t.add_argument("--teacher-categories", default="", metavar="FILE",
                   help="the teacher's categories, when its model does not carry them (matched by name)")
    t.add_argument("--teacher-vad", action="store_true", help="keep the teacher's VAD while it labels")
    n = p.add_argument_group("noise and augmentation")
    n.add_argument("--noise-dir", metavar="D", help="folder of noise wavs (e.g. _background_noise_)")
    n.add_argument("--noise-fraction", type=float, default=0.0, metavar="F",
                   help="fraction of clips (or copies) that get noise (0)")
    n.add_argument("--snr-db", default="5,20", metavar="LOW,HIGH",
                   help="speech-to-noise ratio range in dB (5,20)")
    n.add_argument("--time-shift-ms", type=float, default=0.0, metavar="MS",
                   help="random shift within +-MS (0)")
    n.add_argument("--gain-db", default="0", metavar="LOW,HIGH",
                   help="random gain range in dB (0); write negative values as --gain-db=-6,3")
    n.add_argument("--speed", default="1", metavar="LOW,HIGH",
                   help="random speed factor range, pitch moves with it (e.g. 0.9,1.1)")
    n.add_argument("--augment-copies", type=int, default=0, metavar="K",
                   help="K augmented copies per clip besides the clean one (0: augment the clip itself)")
    n.add_argument("--background-rows", type=int, default=0, metavar="N",
                   help="N rows cut from the noise files, labelled with the background class")
    n.add_argument("--background-label", metavar="LABEL",
                   help="the background class (default: background_noise, _background_noise_, silence, ...)")
    n.add_argument("--background-gain-db", default="-20,0", metavar="LOW,HIGH",
                   help="level range of the background rows in dB (--background-gain-db=-20,0)")
    r = p.add_argument_group("realistic augmentation (each step on a random fraction of the copies)")
    for option, field, metavar, text in REALISTIC:
        default = getattr(AugmentConfig(), field)
        shown = ",".join(f"{v:g}" for v in default) if isinstance(default, tuple) else f"{default:g}"
        r.add_argument(option, dest=field, default=default if isinstance(default, (int, float)) else shown,
                       type=type(default) if isinstance(default, (int, float)) else str, metavar=metavar,
                       help=text)


# option, AugmentConfig field, metavar, help: the steps of core.data.augment beyond noise, shift, gain, speed
REALISTIC = (
    ("--reverb-fraction", "reverb_fraction", "F", "fraction of copies reverberated by a simulated room"),
    ("--rt60", "rt60_s", "LOW,HIGH", "reverberation time range of the rooms in seconds"),
    ("--room-size", "room_m", "LOW,HIGH", "floor side length range of the rooms in metres"),
    ("--rooms", "rooms", "N", "room impulse responses simulated once per seed"),
    ("--pitch-fraction", "pitch_fraction", "F", "fraction of copies whose frequency axis is warped (VTLP)"),
    ("--pitch-factor", "pitch_factor", "LOW,HIGH", "warp factor range: f0 and formants move by it"),
    ("--band-fraction", "band_fraction", "F", "fraction of copies band-limited by random low and high cuts"),
    ("--low-cut-hz", "low_cut_hz", "LOW,HIGH", "high-pass corner range in Hz"),
    ("--high-cut-hz", "high_cut_hz", "LOW,HIGH", "low-pass corner range in Hz (none at or above Nyquist)"),
    ("--telephone-fraction", "telephone_fraction", "F", "fraction of copies limited to the 300-3400 Hz phone band"),
    ("--eq-fraction", "eq_fraction", "F", "fraction of copies coloured by random peaking filters (a microphone)"),
    ("--eq-gain-db", "eq_gain_db", "LOW,HIGH", "peaking filter gain range in dB; write --eq-gain-db=-8,8"),
    ("--eq-bands", "eq_bands", "N", "at most N peaking filters per copy"),
    ("--babble-fraction", "babble_fraction", "F", "fraction of copies mixed with other clips of the same list"),
    ("--babble-snr-db", "babble_snr_db", "LOW,HIGH", "speech-to-babble ratio range in dB"),
    ("--babble-talkers", "babble_talkers", "LOW,HIGH", "number of other clips mixed in"),
)


def augment_config(args) -> AugmentConfig:
    """The AugmentConfig of `kws dataset` options (ValueError names a bad value)."""
    extra = {field: (parse_range(getattr(args, field), option) if "," in metavar else getattr(args, field))
             for option, field, metavar, _ in REALISTIC}
    return AugmentConfig(noise_fraction=args.noise_fraction, snr_db=parse_range(args.snr_db, "--snr-db"),
                         time_shift_ms=args.time_shift_ms, gain_db=parse_range(args.gain_db, "--gain-db"),
                         speed=parse_range(args.speed, "--speed"), copies=args.augment_copies, **extra)


def _show_skipped(skipped, limit: int = 10) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} unreadable or unusable files:", file=sys.stderr)
    for _, reason in skipped[:limit]:
        print(f"  {reason}", file=sys.stderr)
    if len(skipped) > limit:
        print(f"  ... and {len(skipped) - limit} more (all listed in the dataset's meta)", file=sys.stderr)


def _teacher_spec(args):
    from core.train.teacher import TeacherSpec

    if not getattr(args, "teacher", None):
        return None
    return TeacherSpec(args.teacher, args.teacher_featurizer, args.teacher_categories, args.teacher_vad)


def _build_one(args, list_path: Path, out: Path, categories, graph, fmeta, dcfg, aug, noise,
               label: str, shown: Path | None = None) -> None:
    """Featurize one list and save it to `out` (`shown`: the name to report, when `out` is staged)."""
    entries = [(e.path, e.label) for e in read_list(list_path)]
    if not entries:
        raise DataError(f"{list_path}: the list names no wav files")
    extra = {"list_file": str(list_path.absolute()), "noise_dir": args.noise_dir,
             "jobs": args.jobs, "featurizer_file": str(Path(args.featurizer).absolute())}
    t0 = time.perf_counter()
    with Progress(len(entries) + (1 if dcfg.background_rows else 0), label) as progress:
        result = build_dataset(entries, categories, graph, fmeta, config=dcfg, augment_config=aug,
                               noise=noise, jobs=args.jobs, list_file=str(list_path), extra_meta=extra,
                               progress=progress, teacher=_teacher_spec(args))
    seconds = time.perf_counter() - t0
    ds = result.dataset
    save_dataset(out, ds)
    counts = ", ".join(f"{c} {n}" for c, n in ds.counts().items() if n)
    print(f"wrote {shown or out}: {len(ds)} rows x {ds.window_frames} frames x {ds.n_features} features from "
          f"{ds.meta['files_used']}/{len(entries)} files in {seconds:.1f} s "
          f"({len(entries) / seconds:.0f} files/s)")
    print(f"  rows per class: {counts}")
    _show_skipped(result.skipped)


def main(args) -> int:
    from core.models import load_categories, load_model

    graph = load_model(args.featurizer)
    fmeta = featurizer_info(graph, args.featurizer, args.sample_rate)
    aug = augment_config(args)
    dcfg = DatasetConfig(window_frames=args.window_frames, shift_frames=args.shift_frames, seed=args.seed,
                         background_rows=args.background_rows, background_label=args.background_label,
                         background_gain_db=parse_range(args.background_gain_db, "--background-gain-db"))
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if (aug.noise_fraction > 0 or dcfg.background_rows) and not args.noise_dir:
        raise DataError("--noise-fraction and --background-rows need noise recordings: pass --noise-dir D")
    noise = NoiseBank.load(args.noise_dir, fmeta["sample_rate"]) if args.noise_dir else None
    base = Path(args.lists) if args.lists else Path(args.list_file).parent
    categories = load_categories(args.categories or base / CATEGORIES)
    out = Path(args.output)
    check_output_dir(out if args.lists else out.parent)
    if not args.lists:
        clean_stale(out.parent, [out.name])  # temporaries of a killed earlier run
        _build_one(args, Path(args.list_file), Path(args.output), categories, graph, fmeta, dcfg, aug, noise,
                   "dataset")
        return 0
    outdir = Path(args.output)
    if outdir.suffix.lower() == ".npz":
        raise DataError(f"{outdir}: with --lists the output is a folder (it gets training.npz, ...)")
    with output_set(outdir, [f"{split}.npz" for split in NOISE_REGIONS]) as files:
        for split, (lo, hi) in NOISE_REGIONS.items():
            lp = base / f"{split}_list.txt"
            if not lp.is_file():
                if split == "training":
                    raise DataError(f"{lp}: not found (make the lists with `kws lists`)")
                print(f"no {lp.name}: no {split}.npz")
                continue
            if not read_list(lp):
                print(f"{lp.name} is empty: no {split}.npz")
                continue
            train = split == "training"
            name = f"{split}.npz"
            _build_one(args, lp, files.path(name), categories, graph, fmeta,
                       dcfg if train else DatasetConfig(dcfg.window_frames, dcfg.shift_frames, dcfg.seed),
                       aug if train else AugmentConfig(), noise.region(lo, hi) if noise else None, split,
                       shown=files.final(name))
    return 0
