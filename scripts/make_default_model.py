"""The bundled default model, reproducibly, from what is available offline (`make default-model`).

1. Real speech, split by speaker. Held out (never trained on, never tuned on): the v0.01 sample's
   testing_list.txt and validation_list.txt files, the v0.02 sample's validation speakers and the
   bed/cat/happy validation speakers; every speaker of those sets is also removed from training.
   Trained on: the other v0.01 / v0.02 sample clips (few per word: many augmented copies) and up
   to --bch-per-word bed/cat/happy training clips per word.
2. Synthetic speech of the 30 words from every offline engine installed (`kws synth`: espeak-ng,
   flite, festival, Piper), voices x rates x pitches.
3. Realistic augmentation (core.data.augment): background noise at an SNR, room reverb, VTLP,
   band limits and microphone colouring, babble, gain, shift, speed; background rows from noise.
4. Warm start + teacher-student fine-tuning (core.train.warmstart, core.train.teacher): the
   student starts from the ELL DevKit classifier's own weights (2 x GRU 100 with ELL's
   hard-sigmoid gates + dense 31: everything it learnt from ~50k real recordings) and is
   fine-tuned at a low learning rate. The DevKit also labels every batch as it is trained
   (SpecAugment and two-clip mixtures give fresh views each epoch); the student learns from its
   soft targets mixed with the true labels on real clips and background rows, and from the
   teacher alone on synthetic speech (`--synth-labels teacher`: a robotic voice's label would
   pull the model away from people). Most batches play a tail of up to --context-rows other
   rows first (state carried), so the model recovers in a continuous stream.
   `--target-frame peak` (the default): a row's word is learnt at the frame where the model is
   surest of it within the row's loud part, and the quiet frames before and after it (from
   --hold-frames after the word) learn background, so a word fades once said instead of lasting
   into the next one (the DevKit, trained on the last frame of each row, holds a word for seconds);
   the word's other frames may say the word or background, never another word.
   Then the layers `kws custom` starts from (assets/custom_init.kwm): the same fine-tuning with
   ELL's last-frame targets (--custom-init-epochs, Adam 1e-4), whose state holds a word to the end
   of its 1 s row as a custom detector's rows need.
5. The VAD: the DevKit's own VAD parameters (tuned by ELL for this model family) with the
   hangover chosen on training speakers' clips, as many of each word as the median word has
   (`kws vad-tune --only-hold`; streams over noise and back to back), or with `--vad-tune` a
   search of every parameter on those streams.
6. The held-out report: the student beside the DevKit classifier (without its VAD) on every
   held-out set, reset per clip; then continuous + VAD on a shuffled stream. Written to
   WORK/report.json and assets/MODEL_CARD.md, and the model is installed into assets/.

`--skip-train` redoes only steps 5-6 on the model already in the work folder; the training rows
(WORK/data) are reused when they were built with the same data options.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.commands.dataset import NOISE_REGIONS  # noqa: E402
from core.data.augment import AugmentConfig, NoiseBank  # noqa: E402
from core.data.dataset import Dataset, DatasetConfig, build_dataset, featurizer_info, save_dataset  # noqa: E402
from core.data.lists import write_list  # noqa: E402
from core.features.featurizer import FeaturizerConfig, build_featurizer  # noqa: E402
from core.graph import modelfile  # noqa: E402
from core.progress import Progress  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
V1 = SHARED / "speech_commands_v0.01_sample"
V2 = SHARED / "speech_commands_v0.02_sample"
BCH = SHARED / "speech_commands_v0.01_bed_cat_happy"
NOISE = SHARED / "background_noise"
SHUFFLES = 5  # continuous: the mean over this many shuffled orders (seeds 0..4)
DEVKIT = SHARED / "ell_devkit_model"
BACKGROUND = "background_noise"


def run(cmd):
    print("$ kws", " ".join(map(str, cmd)), flush=True)
    subprocess.run([sys.executable, "-m", "core", *map(str, cmd)], cwd=ROOT, check=True)


def speaker(path: Path) -> str:
    return path.name.split("_nohash_")[0]


def _sources(root: Path) -> list[tuple[Path, str, str]]:
    """(path, label, split) from a sample's SOURCES.tsv."""
    with open(root / "SOURCES.tsv", newline="") as fh:
        return [(root / r["path"], r["path"].split("/")[0], r["split_by_sc_hash_rule"])
                for r in csv.DictReader(fh, delimiter="\t")]


def real_sets(bch_per_word: int, seed: int = 0) -> tuple[dict[str, list], list]:
    """(held-out sets by name, training clips): every clip a (path, label); no speaker in both."""
    def listed(name):
        lines = (V1 / name).read_text().split()
        return [(V1 / ln, ln.split("/")[0]) for ln in lines if (V1 / ln).is_file()]

    held = {"v0.01 testing list": listed("testing_list.txt"), "v0.01 validation list": listed("validation_list.txt")}
    v2, bch = _sources(V2), _sources(BCH)
    held["v0.02 validation speakers"] = [(p, w) for p, w, s in v2 if s == "validation"]
    held["bed/cat/happy validation speakers"] = [(p, w) for p, w, s in bch if s == "validation"]
    banned = {speaker(p) for clips in held.values() for p, _ in clips}
    v1_all = [(p, d.name) for d in sorted(V1.iterdir()) if d.is_dir() and not d.name.startswith("_")
              for p in sorted(d.glob("*.wav"))]
    rare = [(p, w) for p, w in v1_all if speaker(p) not in banned]
    rare += [(p, w) for p, w, s in v2 if s == "training" and speaker(p) not in banned]
    rng = np.random.default_rng(seed)
    common = []
    for word in ("bed", "cat", "happy"):
        pool = [(p, w) for p, w, s in bch if s == "training" and w == word and speaker(p) not in banned]
        common += [pool[i] for i in sorted(rng.permutation(len(pool))[:bch_per_word])]
    return held, rare + common


def tune_clips(train_clips, seed: int = 1):
    """Training speakers' clips for choosing the VAD, as many of each word as the median word has
    (the training clips are mostly bed/cat/happy; a VAD chosen on them would suit those three)."""
    by_word: dict[str, list] = {}
    for clip in train_clips:
        by_word.setdefault(clip[1], []).append(clip)
    cap = int(np.median([len(v) for v in by_word.values()]))
    rng = np.random.default_rng(seed)
    out = []
    for w in sorted(by_word):
        clips = by_word[w]
        out += clips if len(clips) <= cap else [clips[i] for i in sorted(rng.permutation(len(clips))[:cap])]
    return out


def concat(parts: list[Dataset]) -> Dataset:
    return Dataset(np.concatenate([p.features for p in parts]), np.concatenate([p.labels for p in parts]),
                   parts[0].categories, parts[0].featurizer, {"parts": [p.meta for p in parts]})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=ROOT / "build" / "default-model", type=Path)
    ap.add_argument("--per-word", type=int, default=120, help="synthetic clips per word")
    ap.add_argument("--bch-per-word", type=int, default=300, help="bed/cat/happy training clips per word")
    ap.add_argument("--rare-copies", type=int, default=12, help="augmented copies per sample clip (few per word)")
    ap.add_argument("--common-copies", type=int, default=2, help="augmented copies per bed/cat/happy clip")
    ap.add_argument("--synth-copies", type=int, default=1, help="augmented copies per synthetic clip")
    ap.add_argument("--background-rows", type=int, default=2000)
    ap.add_argument("--init", default=str(DEVKIT / "classifier.ell"), help="the model fine-tuned (warm start)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--learning-rate", type=float, default=5e-4, help="Adam, cosine to 1/30 of it")
    ap.add_argument("--distill-weight", type=float, default=0.5, help="teacher's share where a row has a label")
    ap.add_argument("--synth-labels", choices=("teacher", "label"), default="teacher",
                    help="synthetic speech rows learn from the teacher alone, or also from their labels")
    ap.add_argument("--context-prob", type=float, default=0.7, help="share of batches trained after unrelated context")
    ap.add_argument("--context-rows", type=int, default=4, help="context: a tail of up to this many other rows")
    ap.add_argument("--mix-prob", type=float, default=0.2, help="share of each batch replaced by two-clip mixtures")
    ap.add_argument("--target-frame", choices=("last", "peak"), default="peak",
                    help="last: a row's label at its last frame (ELL); peak: at the word, quiet frames background")
    ap.add_argument("--hold-frames", type=int, default=6, help="peak: frames a word may last after it is said")
    ap.add_argument("--release-weight", type=float, default=1.0, help="peak: weight of the quiet frames' loss")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-install", action="store_true", help="do not copy the result into assets/")
    ap.add_argument("--skip-train", action="store_true", help="reuse WORK/train/model.kwm: only VAD, eval, install")
    ap.add_argument("--resume", action="store_true",
                    help="continue training from WORK/train/checkpoint.pt on WORK/data (the schedule follows --epochs)")
    ap.add_argument("--vad-tune", action="store_true",
                    help="search all VAD parameters on training speakers' streams (default: the DevKit's own VAD "
                         "parameters with the hangover chosen on those streams)")
    ap.add_argument("--vad-trials", type=int, default=200)
    ap.add_argument("--custom-init-epochs", type=int, default=6,
                    help="epochs of the layers kws custom starts from (last-frame targets, Adam 1e-4); 0: skip")
    args = ap.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    words = sorted(d.name for d in V1.iterdir() if d.is_dir() and not d.name.startswith("_"))
    categories = [BACKGROUND, *words]
    held, train_clips = real_sets(args.bch_per_word)
    synth = work / f"synth{args.per_word}"
    out = work / "train"
    if args.resume:
        resume_model(args, work, train_clips, held, out)
    elif not args.skip_train:
        if not (synth / "synth.json").is_file():
            run(["synth", "--words", ",".join(words), "-o", synth, "--per-word", args.per_word, "--jobs", args.jobs])
        train_model(args, work, categories, train_clips, held, synth, out)
    model_path = out / "model.kwm"
    custom_init = work / "custom_init" / "model.kwm"
    if args.custom_init_epochs and not args.skip_train:
        # kws custom's starting layers: ELL's last-frame recipe, whose state holds a word to the end of
        # its 1 s row as a custom detector's rows need (the peak-trained classifier lets go at once)
        from core.train.trainer import load_splits

        ci = argparse.Namespace(**{**vars(args), "target_frame": "last", "epochs": args.custom_init_epochs,
                                   "learning_rate": 1e-4})
        print("training the layers kws custom starts from (last-frame targets)", flush=True)
        fit(ci, load_splits(work / "data"), custom_init.parent, train_clips, held)
    featurizer = build_featurizer(FeaturizerConfig())
    feat_path = work / "featurizer.kwm"
    modelfile.save(featurizer, feat_path)
    lists = work / "lists"
    lists.mkdir(exist_ok=True)
    write_list(lists / "tune_list.txt", [p for p, _ in tune_clips(train_clips)])  # label: the folder's name
    for name, clips in held.items():
        write_list(lists / f"{name.replace(' ', '_').replace('/', '-')}.txt", [p for p, _ in clips])
    params = work / "vad_params.json"
    # the training speakers' clips over noise at 20 and 10 dB with gaps, and back to back
    streams = ["-f", feat_path, "-c", model_path, "-l", lists / "tune_list.txt", "--noise-dir", NOISE,
               "--snr-db", "20,10", "--back-to-back", "-o", params]
    if args.vad_tune:
        run(["vad-tune", *streams, "--trials", args.vad_trials, "--search-reset-on", "--search-hold"])
    else:
        from core.models import load_model
        from core.vad.model import model_vad
        from core.vad.params import save_params

        devkit_vad = work / "devkit_vad.json"
        save_params(devkit_vad, model_vad(load_model(DEVKIT / "classifier.ell"))[0],
                    {"source": "the ELL DevKit classifier's own VAD node"})
        run(["vad-tune", *streams, "--params", devkit_vad, "--only-hold"])
    with_vad = work / "classifier_vad.kwm"
    run(["add-vad", model_path, "-o", with_vad, "--params", params])
    report = heldout_report(feat_path, with_vad, held)
    report["recipe"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    hold = json.loads(params.read_text())["hold_frames"]
    report["vad"] = ("tuned on training speakers' streams (kws vad-tune)" if args.vad_tune
                     else f"the DevKit's own VAD parameters with a hangover of {hold} frames (the VAD resets "
                          "the state only after that much quiet, not between a word's syllables), chosen on "
                          "training speakers' clips, as many per word as the median word (kws vad-tune --only-hold)")
    report["training_clips_real"] = len(train_clips)
    trained = json.loads((out / "train_results.json").read_text()).get("training_time_s", 0.0)
    report["hours"] = round((time.time() - t_start) / 3600, 2)  # this run (training too unless --skip-train)
    report["training_hours"] = round(trained / 3600, 2)
    (work / "report.json").write_text(json.dumps(report, indent=1))
    if not args.no_install:
        assets = ROOT / "assets"
        shutil.copyfile(feat_path, assets / "featurizer.kwm")
        shutil.copyfile(with_vad, assets / "classifier.kwm")
        shutil.copyfile(params, assets / "vad_params.json")
        if custom_init.is_file():
            shutil.copyfile(custom_init, assets / "custom_init.kwm")
        (assets / "categories.txt").write_text("\n".join(categories) + "\n")
        (assets / "MODEL_CARD.md").write_text(model_card(report))
        print(f"installed into {assets}")
    return 0


DATA_OPTIONS = ("per_word", "bch_per_word", "rare_copies", "common_copies", "synth_copies", "background_rows")


def train_model(args, work: Path, categories: list[str], train_clips, held, synth: Path, out: Path) -> None:
    from core.data.lists import ListsConfig, make_lists
    from core.train.trainer import Splits, load_splits

    options = {k: getattr(args, k) for k in DATA_OPTIONS}
    stamp = work / "data" / "options.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == options:
        print(f"reusing the training rows in {work / 'data'} (built with the same options)", flush=True)
        return fit(args, load_splits(work / "data"), out, train_clips, held)

    featurizer = build_featurizer(FeaturizerConfig())
    feat_meta = featurizer_info(featurizer)
    bank = NoiseBank.load(NOISE, 16000)
    noise = bank.region(*NOISE_REGIONS["training"])
    realistic = dict(noise_fraction=0.7, snr_db=(-3.0, 25.0), time_shift_ms=150.0, gain_db=(-24.0, 6.0),
                     speed=(0.85, 1.15), reverb_fraction=0.3, pitch_fraction=0.3, pitch_factor=(0.88, 1.12),
                     band_fraction=0.25, telephone_fraction=0.05, eq_fraction=0.3, babble_fraction=0.1)

    def rows(entries, copies, background=0, seed=0, label=""):
        aug = AugmentConfig(copies=copies, **realistic) if copies else AugmentConfig()
        cfg = DatasetConfig(seed=seed, background_rows=background, background_label=BACKGROUND)
        res = build_dataset(entries, categories, featurizer, feat_meta, config=cfg, augment_config=aug,
                            noise=noise, jobs=args.jobs, progress=Progress(len(entries), label))
        if res.skipped:
            print(f"{label}: skipped {len(res.skipped)} files", file=sys.stderr)
        return res.dataset

    bch_words = {"bed", "cat", "happy"}
    rare = [(p, w) for p, w in train_clips if not (w in bch_words and p.is_relative_to(BCH))]
    common = [(p, w) for p, w in train_clips if w in bch_words and p.is_relative_to(BCH)]
    syn = make_lists([synth], ListsConfig(validation_percent=0.0, testing_percent=0.0))
    syn_entries = [(e, e.parent.name) for e in syn.training]
    train = concat([rows(rare, args.rare_copies, seed=2, label="real (sample clips)"),
                    rows(common, args.common_copies, seed=3, label="real (bed/cat/happy)"),
                    rows(syn_entries, args.synth_copies, background=args.background_rows, seed=1, label="synthetic")])
    val_clips = held["v0.01 validation list"] + held["v0.02 validation speakers"]
    val = rows(val_clips, 0, seed=4, label="validation (held-out speakers)")
    stamp.unlink(missing_ok=True)
    for name, ds in (("training", train), ("validation", val)):
        save_dataset(work / "data" / f"{name}.npz", ds)
    stamp.write_text(json.dumps(options))
    print(f"rows: training {len(train.labels)}, validation {len(val.labels)}", flush=True)

    fit(args, Splits(train, val, None), out, train_clips, held)


def recipe_config(args):
    from core.train.config import TrainConfig

    return TrainConfig(init=args.init, epochs=args.epochs, batch_size=128, optimizer="adam",
                       learning_rate=args.learning_rate, weight_decay=0.0, scheduler="cosine",
                       lr_min=args.learning_rate / 30, spec_augment=True, context_prob=args.context_prob,
                       context_rows=args.context_rows, seed=0, teacher=str(DEVKIT / "classifier.ell"),
                       distill_weight=args.distill_weight, temperature=2.0, mix_prob=args.mix_prob,
                       target_frame=args.target_frame, hold_frames=args.hold_frames,
                       release_weight=args.release_weight)


def teacher_only_synthetic(train: Dataset) -> Dataset:
    """The synthetic speech rows (the third part of the training rows, background rows excepted)
    labelled -1: they learn from the teacher alone."""
    parts = train.meta["parts"]
    start = sum(int(p["rows"]) for p in parts[:2])
    labels = train.labels.copy()
    tail = labels[start:]
    tail[tail != train.categories.index(BACKGROUND)] = -1
    return Dataset(train.features, labels, train.categories, train.featurizer, train.meta, train.soft)


def resume_model(args, work: Path, train_clips, held, out: Path) -> None:
    from core.train.trainer import load_splits

    fit(args, load_splits(work / "data"), out, train_clips, held, resume=True)


def fit(args, splits, out: Path, train_clips, held, resume: bool = False) -> None:
    from core.train.trainer import Splits, Trainer

    cfg = recipe_config(args)
    if args.synth_labels == "teacher":
        splits = Splits(teacher_only_synthetic(splits.train), splits.val, splits.test)
    trainer = Trainer(cfg, splits, out, on_epoch=lambda e: print(
        f"epoch {e.epoch:2d} loss {e.loss:.3f} train {e.train_accuracy:.3f} val {e.val_accuracy:.3f} "
        f"lr {e.lr:.1e} {e.seconds:.0f}s", flush=True))
    if resume:
        trainer.resume()
        print(f"resuming after epoch {trainer.start_epoch} of {args.epochs}", flush=True)
    trainer.fit()
    result = trainer.finish()
    classifier = modelfile.load(result.outputs["model"])
    classifier.metadata["provenance"] = {
        "recipe": "scripts/make_default_model.py", "teacher": "ELL DevKit classifier.ell (online distillation)",
        "init": "warm start from " + Path(args.init).name,
        "synthetic_per_word": args.per_word, "real_training_clips": len(train_clips),
        "held_out": {k: len(v) for k, v in held.items()},
    }
    modelfile.save(classifier, out / "model.kwm")


def heldout_report(feat_path: Path, classifier_path: Path, held: dict[str, list]) -> dict:
    """Ours beside the DevKit classifier, reset per clip (the classifiers: VADs removed), on every
    held-out set; both continuous with their VADs on a shuffled stream (the table of `kws versus`)."""
    from core.evaluate.versus import HEADER, Model, row_text, versus
    from core.models import load_categories, load_model

    ours_c = load_model(classifier_path)
    ours = Model(load_model(feat_path), ours_c, list(ours_c.metadata["categories"]))
    devkit = Model(load_model(DEVKIT / "featurizer.ell"), load_model(DEVKIT / "classifier.ell"),
                   load_categories(DEVKIT / "categories.txt"))
    print("\n" + HEADER.replace("other", "DevKit"))
    rows = versus(ours, devkit, held, on_row=lambda r: print(row_text(r), flush=True), shuffles=SHUFFLES)
    return {"sets": {r.name: {"clips": r.clips, "ours_reset": r.ours_reset, "devkit_reset": r.other_reset,
                              "ours_continuous_vad": r.ours_continuous,
                              "devkit_continuous_vad": r.other_continuous} for r in rows}}


def targets(recipe: dict) -> str:
    if recipe.get("target_frame", "last") == "last":
        return "each row's label at its last frame (ELL's recipe)."
    return (f"each row's word at the frame the student is surest of it within the row's loud part; "
            f"the quiet frames before the word and from {recipe['hold_frames']} frames after it learn "
            f"background (weight {recipe['release_weight']:g}), so a word fades once said; the word's other "
            f"frames may say it or background but no other word (the end of 'happy' must not fire 'eight').")


def model_card(report: dict) -> str:
    ci_epochs = report["recipe"]["custom_init_epochs"]
    rows = "\n".join(f"| {name} | {r['clips']} | {100 * r['ours_reset']:.1f} % | {100 * r['devkit_reset']:.1f} % | "
                     f"{100 * r['ours_continuous_vad']:.1f} % | {100 * r['devkit_continuous_vad']:.1f} % |"
                     for name, r in report["sets"].items())
    recipe = report["recipe"]
    return f"""# Default model card (assets/classifier.kwm)

Made by `make default-model` (scripts/make_default_model.py; its docstring is the recipe).

- Task: 30 Speech Commands words + background_noise, 1 s clips, streaming frame by frame.
- Featurizer: 16 kHz, 512-sample window and hop, Hamming, 80 mel, log(x + 1) (assets/featurizer.kwm).
- Student: warm-started from the ELL DevKit classifier's weights (../shared/data/ell_devkit_model,
  MIT): 2 x GRU 100 with hard-sigmoid gates + dense 31, softmax; fine-tuned {recipe['epochs']} epochs
  (Adam {recipe['learning_rate']:g}, cosine). Its VAD: {report['vad']}.
- Teacher: the DevKit classifier, online distillation (temperature 2, weight {recipe['distill_weight']}
  where a row has a true label; not trusted on background rows; synthetic speech:
  {'teacher only' if recipe['synth_labels'] == 'teacher' else 'teacher and labels'}),
  two-clip mixtures, {recipe['context_prob']:g} of batches after a tail of up to {recipe['context_rows']} other rows.
- Targets: {targets(recipe)}
- Data: {report['training_clips_real']} real training clips (Speech Commands samples, split by speaker;
  {recipe['rare_copies']} augmented copies of each rare-word clip, {recipe['common_copies']} of each
  bed/cat/happy clip),
  {recipe['per_word']} synthetic clips per word from every offline speech engine, background noise;
  augmentation: noise, reverb, VTLP, band limits, EQ, babble, gain, shift, speed.
- Held-out speakers only below (never trained or tuned on); best frame per clip (frames the
  background class wins are passed over, as in ELL's eval_test); reset: the state
  reset before each clip, the classifiers without their VADs; continuous: the
  clips as one stream, each model with its own VAD, the mean over {SHUFFLES} shuffled orders (seeds
  0-{SHUFFLES - 1}); a word still said when the next clip starts counts for the clip it began in
  (`kws eval`'s default; `--attribution frame` is ELL's eval_test).

| held-out set | clips | ours, reset | DevKit, reset | ours, continuous + VAD | DevKit, continuous + VAD |
|---|---|---|---|---|---|
{rows}

Fine-tuning took {report['training_hours']} h on this project's 2-core CPU machine (shared with other work).

assets/custom_init.kwm, the layers `kws custom` starts from: the same fine-tuning with ELL's
last-frame targets ({ci_epochs} epochs, Adam 0.0001), whose state holds a word to the end of its
1 s row as a custom detector's rows need.
"""


if __name__ == "__main__":
    sys.exit(main())
