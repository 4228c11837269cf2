"""Teacher-student training: category matching, stored soft targets, the teacher's own
featurizer, the distillation loss, and a student that learns the teacher better than labels do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.audio.wav import read_wav
from core.data.augment import AugmentConfig, NoiseBank
from core.data.dataset import DatasetConfig, build_dataset, featurizer_info, load_dataset, save_dataset
from core.errors import DataError
from core.features.featurizer import FeaturizerConfig, build_featurizer
from core.train.config import TrainConfig
from core.train.teacher import TeacherSpec, category_map, load_teacher
from core.train.trainer import Splits, Trainer

pytestmark = pytest.mark.shared


def test_categories_are_matched_by_name():
    m, covered = category_map(["_background_noise_", "yes", "no", "up"],
                              ["background_noise", "yes", "no", "unknown", "left"])
    assert m.tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]
    assert covered.tolist() == [True, True, True, True, False]  # nobody speaks for "left"
    with pytest.raises(DataError, match="share no name"):
        category_map(["a", "b"], ["c", "d"])


@pytest.fixture(scope="module")
def devkit_dir(shared_data):
    return shared_data / "ell_devkit_model"


@pytest.fixture(scope="module")
def clips(shared_data):
    root = shared_data / "speech_commands_v0.01_sample"
    return [(sorted((root / w).glob("*.wav"))[0], w) for w in ("yes", "no", "seven", "bed", "cat", "happy")]


CATS = ["background_noise", "yes", "no", "seven", "bed", "cat", "happy"]


def test_stored_soft_targets_equal_a_fresh_teacher_run(devkit_dir, clips, tmp_path, shared_data):
    feat = build_featurizer(FeaturizerConfig())
    spec = TeacherSpec(str(devkit_dir / "classifier.ell"))  # categories.txt beside it; same features as ours
    noise = NoiseBank.load(shared_data / "background_noise", 16000)
    aug = AugmentConfig(copies=1, noise_fraction=1.0, snr_db=(10.0, 20.0))
    res = build_dataset(clips, CATS, feat, featurizer_info(feat), config=DatasetConfig(background_rows=3, seed=5),
                        augment_config=aug, noise=noise, teacher=spec)
    ds = res.dataset
    assert ds.soft is not None and ds.soft.shape == (len(ds), len(CATS)) and ds.meta["teacher"]["classifier_sha256"]
    teacher = load_teacher(spec, CATS, ds.featurizer)
    assert teacher.featurizer is None
    speech = ds.labels != 0
    np.testing.assert_array_equal(ds.soft[speech], teacher.label_rows(ds.features[speech]))
    np.testing.assert_array_equal(ds.soft[~speech], np.eye(len(CATS), dtype=np.float32)[ds.labels[~speech]])
    assert (ds.soft[speech].argmax(1) == ds.labels[speech]).mean() >= 0.75  # the DevKit knows these words
    back = load_dataset(save_dataset(tmp_path / "d.npz", ds))
    np.testing.assert_array_equal(back.soft, ds.soft)
    np.testing.assert_array_equal(back.subset([1, 2]).soft, ds.soft[[1, 2]])


def test_teacher_hears_audio_through_its_own_featurizer(devkit_dir, clips):
    """An 8 kHz, 40-filter student dataset labelled by the 16 kHz DevKit: the teacher resamples
    the same audio and featurizes it itself; stored targets equal a fresh run on the clip."""
    feat = build_featurizer(FeaturizerConfig(sample_rate=8000, window_size=256, hop_length=256, n_filters=40))
    meta = featurizer_info(feat)
    spec = TeacherSpec(str(devkit_dir / "classifier.ell"), featurizer=str(devkit_dir / "featurizer.ell"))
    ds = build_dataset(clips, CATS, feat, meta, teacher=spec).dataset
    assert ds.features.shape[2] == 40
    teacher = load_teacher(spec, CATS, meta)
    assert teacher.featurizer is not None
    with pytest.raises(DataError, match="differs from the dataset"):
        load_teacher(spec, CATS, meta, need_same_features=True)
    row = 0
    for path, _ in clips:
        x, _ = read_wav(path, 8000)
        n_rows = 1  # 1 s at 8 kHz / 256 = 31 frames: one padded row of 40
        end = 40 * 256
        x = np.concatenate([x, np.zeros(max(0, end - len(x)), np.float32)])  # the clip, then silence
        fresh = teacher.label_audio(x, 8000, [end], frames=40)
        np.testing.assert_array_equal(ds.soft[row : row + n_rows], fresh)
        row += n_rows
    # the teacher hears what the student hears: 8 kHz audio has nothing above 4 kHz, where the
    # DevKit's upper mel bands look, so it is often wrong here (a property of that teacher)
    np.testing.assert_allclose(ds.soft.sum(1), 1.0, rtol=1e-5)


def _tiny_dataset(labels, soft=None):
    from core.data.dataset import Dataset

    rng = np.random.default_rng(0)
    return Dataset(rng.standard_normal((len(labels), 6, 4)).astype(np.float32), np.array(labels, np.int64),
                   ("background_noise", "a", "b"), {"sample_rate": 16000}, {}, soft)


def test_rows_without_labels_need_a_teacher(tmp_path):
    with pytest.raises(ValueError, match="-2"):
        _tiny_dataset([0, -2, 2])
    with pytest.raises(DataError, match="need a teacher"):
        Trainer(TrainConfig(hidden_size=4, epochs=1), Splits(_tiny_dataset([0, -1, 2]), None, None), tmp_path)
    soft = np.full((3, 3), 1 / 3, np.float32)
    ds = _tiny_dataset([0, -1, 2], soft)
    with pytest.raises(DataError, match="need a teacher"):
        Trainer(TrainConfig(hidden_size=4, epochs=1), Splits(_tiny_dataset([0, 1, 2]), None, None),
                tmp_path)._init_teacher(ds)
    t = Trainer(TrainConfig(hidden_size=4, epochs=1, batch_size=3, teacher_mode="dataset"),
                Splits(ds, None, None), tmp_path)
    assert t.soft is not None and t.fit().log[0]["loss"] > 0


def test_distillation_loss():
    """KL term is zero when the student equals the teacher, labels win on background rows, and
    unlabelled rows learn from the teacher alone."""
    ds = _tiny_dataset([0, 1, 2], np.eye(3, dtype=np.float32))
    t = Trainer(TrainConfig(hidden_size=4, epochs=1, teacher_mode="dataset", distill_weight=1.0,
                            temperature=2.0), Splits(ds, None, None), "/nonexistent-unused")
    q = torch.tensor([[0.2, 0.3, 0.5]] * 3)
    same = torch.log(q)
    y = torch.tensor([-1, -1, -1])
    assert float(t._loss(same, y, q)) == pytest.approx(0.0, abs=1e-6)
    other = torch.log(torch.tensor([[0.5, 0.3, 0.2]] * 3))
    assert float(t._loss(other, y, q)) > 0.05
    # labelled background rows: the true label only (teacher ignored even with distill_weight 1)
    yb = torch.tensor([0, 0, 0])
    expect = torch.nn.functional.nll_loss(other, yb)
    assert float(t._loss(other, yb, q)) == pytest.approx(float(expect), rel=1e-6)


@pytest.mark.slow
def test_distilled_student_agrees_with_the_teacher_better_than_labels_alone(devkit_dir, shared_data, tmp_path):
    """A small pool of real clips (the v0.01 sample's training part: ~7 per word) and a small GRU:
    trained on labels alone vs distilled from the DevKit online (with two-clip mixtures). On
    held-out speakers (the sample's validation list and the v0.02 sample's validation speakers)
    the distilled student agrees with the teacher on more clips."""
    import csv

    torch.set_num_threads(1)
    root, v2 = shared_data / "speech_commands_v0.01_sample", shared_data / "speech_commands_v0.02_sample"
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("_"))
    cats = ["background_noise", *words]
    held_names = set((root / "testing_list.txt").read_text().split()) | set(
        (root / "validation_list.txt").read_text().split())
    train = [(p, w) for w in words for p in sorted((root / w).glob("*.wav")) if f"{w}/{p.name}" not in held_names]
    with open(v2 / "SOURCES.tsv", newline="") as fh:
        held = [(v2 / r["path"], r["path"].split("/")[0]) for r in csv.DictReader(fh, delimiter="\t")
                if r["split_by_sc_hash_rule"] == "validation"]
    held += [(root / n, n.split("/")[0]) for n in sorted(held_names) if (root / n).is_file()]
    feat = build_featurizer(FeaturizerConfig())
    meta = featurizer_info(feat)
    noise = NoiseBank.load(shared_data / "background_noise", 16000)
    aug = AugmentConfig(copies=6, noise_fraction=0.5, snr_db=(5.0, 25.0), time_shift_ms=100.0, gain_db=(-12.0, 3.0))
    tr = build_dataset(train, cats, feat, meta, config=DatasetConfig(background_rows=60, seed=1),
                       augment_config=aug, noise=noise, jobs=2).dataset
    test = build_dataset(held, cats, feat, meta).dataset
    teacher = load_teacher(TeacherSpec(str(devkit_dir / "classifier.ell")), cats, meta)
    q = teacher.label_rows(test.features)
    want = q.argmax(1)
    agree, kl = {}, {}
    base = dict(hidden_size=64, epochs=20, batch_size=32, optimizer="adam", learning_rate=3e-3, normalize=True,
                seed=0)
    for name, extra in (("labels", {}), ("distilled", {"teacher": str(devkit_dir / "classifier.ell"),
                                                        "mix_prob": 0.25})):
        trainer = Trainer(TrainConfig(**base, **extra), Splits(tr, None, None), tmp_path / name)
        trainer.fit()
        with torch.no_grad():
            log_p = trainer.model.eval()(torch.from_numpy(test.features))[:, -1].numpy()
        agree[name] = float((log_p.argmax(1) == want).mean())
        kl[name] = float((q * (np.log(np.maximum(q, 1e-8)) - log_p)).sum(1).mean())
    # measured here: agreement 25.6 % (labels) vs 43.8 % (distilled); KL 3.75 vs 2.15 nats
    assert agree["distilled"] >= agree["labels"] + 0.1 and kl["distilled"] < kl["labels"] - 0.5, (agree, kl)
