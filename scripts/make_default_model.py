"""The bundled default model, reproducibly, from what is available offline (`make default-model`).

1. espeak-ng speech for the 30 Speech Commands words (`kws synth`), every voice/variant/speed/pitch.
2. The real clips in ../shared/data/speech_commands_v0.01_sample: files named in its testing_list.txt
   are never trained on (they are the held-out test set); validation_list.txt files validate.
3. Background noise from ../shared/data/background_noise for augmentation and a background class.
4. Training rows: synthetic clips (clean + augmented copies) and the real training clips with many
   augmented copies (they are few but are real voices), background rows cut from the noise.
5. A 2 x GRU 128 classifier (the ELL recipe's shape) trained with Adam, cosine schedule,
   normalisation, SpecAugment and context batches (state carried from unrelated frames).
6. A VAD tuned for continuous streams on the real training + validation clips (`kws vad-tune`),
   baked into the classifier (`kws add-vad`): assets/vad_params.json records the search.
7. Evaluation on the held-out real clips: reset / continuous / continuous + VAD (the README's
   numbers), then featurizer, classifier and categories are installed into assets/.

`--skip-train` redoes only steps 6-7 on the model already in the work folder.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.commands.dataset import NOISE_REGIONS  # noqa: E402
from core.data.augment import AugmentConfig, NoiseBank  # noqa: E402
from core.data.dataset import Dataset, DatasetConfig, build_dataset, featurizer_info, save_dataset  # noqa: E402
from core.data.lists import ListsConfig, make_lists, write_list  # noqa: E402
from core.features.featurizer import FeaturizerConfig, build_featurizer  # noqa: E402
from core.graph import modelfile  # noqa: E402
from core.progress import Progress  # noqa: E402
from core.train.config import TrainConfig  # noqa: E402
from core.train.trainer import Splits, Trainer  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
REAL = SHARED / "speech_commands_v0.01_sample"
NOISE = SHARED / "background_noise"
BACKGROUND = "background_noise"


def run(cmd):
    print("$", " ".join(map(str, cmd)), flush=True)
    subprocess.run([sys.executable, "-m", "core", *map(str, cmd)], cwd=ROOT, check=True)


def concat(parts: list[Dataset]) -> Dataset:
    return Dataset(np.concatenate([p.features for p in parts]), np.concatenate([p.labels for p in parts]),
                   parts[0].categories, parts[0].featurizer, {"parts": [p.meta for p in parts]})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=ROOT / "build" / "default-model", type=Path)
    ap.add_argument("--per-word", type=int, default=600, help="synthetic clips per word")
    ap.add_argument("--real-copies", type=int, default=40, help="augmented copies per real training clip")
    ap.add_argument("--synth-copies", type=int, default=1, help="augmented copies per synthetic clip")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-install", action="store_true", help="do not copy the result into assets/")
    ap.add_argument("--skip-train", action="store_true", help="reuse WORK/train/model.kwm: only VAD, eval, install")
    ap.add_argument("--vad-trials", type=int, default=300)
    args = ap.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    words = sorted(d.name for d in REAL.iterdir() if d.is_dir() and not d.name.startswith("_"))
    synth = work / f"synth{args.per_word}"
    if not args.skip_train and not (synth / words[-1]).is_dir():
        run(["synth", "--words", ",".join(words), "-o", synth, "--per-word", args.per_word, "--jobs", args.jobs])

    out = work / "train"
    if not args.skip_train:
        train_model(args, work, words, synth, out)
    model_path = out / "model.kwm"
    categories = [BACKGROUND, *words]
    real = make_lists([REAL], ListsConfig())
    featurizer = build_featurizer(FeaturizerConfig())
    lists = work / "lists"
    lists.mkdir(exist_ok=True)
    write_list(lists / "tune_list.txt", [*real.training, *real.validation])
    write_list(lists / "testing_list.txt", real.testing)
    feat_path = work / "featurizer.kwm"
    modelfile.save(featurizer, feat_path)
    params = work / "vad_params.json"
    run(["vad-tune", "-f", feat_path, "-c", model_path, "-l", lists / "tune_list.txt", "--noise-dir", NOISE,
         "--snr-db", "20,10", "--back-to-back", "--trials", args.vad_trials, "--search-reset-on", "--search-hold",
         "-o", params])
    with_vad = work / "classifier_vad.kwm"
    run(["add-vad", model_path, "-o", with_vad, "--params", params])
    report = work / "eval_testing.json"
    run(["eval", "-f", feat_path, "-c", with_vad, "-l", lists / "testing_list.txt", "--compare", "--quiet",
         "--json", report])
    if not args.no_install:
        assets = ROOT / "assets"
        shutil.copyfile(feat_path, assets / "featurizer.kwm")
        shutil.copyfile(with_vad, assets / "classifier.kwm")
        shutil.copyfile(params, assets / "vad_params.json")
        (assets / "categories.txt").write_text("\n".join(categories) + "\n")
        print(f"installed into {assets}")
    return 0


def train_model(args, work: Path, words: list[str], synth: Path, out: Path) -> None:
    featurizer = build_featurizer(FeaturizerConfig())
    feat_meta = featurizer_info(featurizer)
    categories = [BACKGROUND, *words]
    real = make_lists([REAL], ListsConfig())
    syn = make_lists([synth], ListsConfig())
    bank = NoiseBank.load(NOISE, 16000)
    split_noise = {split: bank.region(lo, hi) for split, (lo, hi) in NOISE_REGIONS.items()}

    def rows(entries, split, copies, background=0, seed=0, label=""):
        aug = AugmentConfig(copies=copies, noise_fraction=0.8, snr_db=(-3.0, 25.0), time_shift_ms=150.0,
                            gain_db=(-24.0, 6.0), speed=(0.8, 1.2)) if copies else AugmentConfig()
        cfg = DatasetConfig(seed=seed, background_rows=background, background_label=BACKGROUND)
        res = build_dataset([(p, p.parent.name) for p in entries], categories, featurizer, feat_meta, config=cfg,
                            augment_config=aug, noise=split_noise[split], jobs=args.jobs,
                            progress=Progress(len(entries), f"{label} {split}"))
        if res.skipped:
            print(f"skipped {len(res.skipped)} files", file=sys.stderr)
        return res.dataset

    train = concat([rows(syn.training, "training", args.synth_copies, background=3000, seed=1, label="synth"),
                    rows(real.training, "training", args.real_copies, seed=2, label="real")])
    # validation on real voices only: that is what the model is for
    val = rows(real.validation, "validation", 0, background=100, seed=3, label="real")
    test = rows(real.testing, "testing", 0, label="real")
    for name, ds in (("training", train), ("validation", val), ("testing", test)):
        save_dataset(work / "data" / f"{name}.npz", ds)
    print(f"rows: training {len(train.labels)}, validation {len(val.labels)}, testing (real) {len(test.labels)}")

    cfg = TrainConfig(architecture="gru", num_layers=2, hidden_size=128, epochs=args.epochs, batch_size=128,
                      optimizer="adam", learning_rate=2e-3, weight_decay=1e-5, scheduler="cosine",
                      lr_min=5e-5, normalize=True, spec_augment=True, dropout=0.2, context_prob=0.5, seed=0)
    trainer = Trainer(cfg, Splits(train, val, test), out, on_epoch=lambda e: print(
        f"epoch {e.epoch:2d} loss {e.loss:.3f} train {e.train_accuracy:.3f} val {e.val_accuracy:.3f} "
        f"lr {e.lr:.1e} {e.seconds:.0f}s", flush=True))
    trainer.fit()
    result = trainer.finish()
    classifier = modelfile.load(result.outputs["model"])
    classifier.metadata["provenance"] = {
        "recipe": "scripts/make_default_model.py", "synthetic_per_word": args.per_word,
        "real_training_clips": len(real.training), "real_copies": args.real_copies,
        "held_out": "files of speech_commands_v0.01_sample/testing_list.txt",
    }
    modelfile.save(classifier, out / "model.kwm")


if __name__ == "__main__":
    sys.exit(main())
