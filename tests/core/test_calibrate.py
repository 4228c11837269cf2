"""kws calibrate: the DET sweep against the Detector it stands for, the choice of the operating point,
the threshold and smoothing stored in the classifier and used by kws run / kws eval (one rule)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core import models
from core.cli import main as kws
from core.errors import DataError, ModelFormatError
from core.evaluate.calibrate import DEFAULT_THRESHOLDS, calibrate, choose, sweep
from core.evaluate.stream import Event, assemble_stream, detection_metrics
from core.graph import modelfile
from core.pipeline import DETECTOR_KEY, KeywordSpotter, detector_settings

pytestmark = pytest.mark.skipif(not models.default_models_available(), reason="no bundled model in assets/")


@pytest.fixture(scope="module")
def clips(shared_data):
    """Real clips of v0.02 (other recordings than the bundled model was trained on): 2 per word."""
    root = shared_data / "speech_commands_v0.02_sample"
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        out += [(f, d.name) for f in sorted(d.glob("*.wav"))[:2]]
    return out


@pytest.fixture(scope="module")
def stream_probs(clips, shared_data):
    """The bundled model's outputs over a stream of those clips with real noise; some clips relabelled
    as a word the model does not know, so that detections on other words are exercised."""
    f, c = models.load_model(models.DEFAULT_FEATURIZER), models.load_model(models.DEFAULT_CLASSIFIER)
    spotter = KeywordSpotter(f, c, backend="interpreter")
    noise = sorted((shared_data / "background_noise").glob("*.wav"))[:2]
    st = assemble_stream(clips, spotter.sample_rate, noise_files=noise, snr_db=15.0, seed=1)
    spotter.reset()
    _, probs = spotter.process(st.samples)
    events = tuple(Event(e.start_s, e.end_s, "hello" if i % 5 == 0 else e.label) for i, e in enumerate(st.events))
    return probs, spotter.frame_duration_s, events, st.duration_s, c.categories


@pytest.mark.parametrize("smoothing", [0, 1, 3, 8])
def test_sweep_scores_exactly_what_the_detector_scores(stream_probs, smoothing):
    probs, hop_s, events, dur, cats = stream_probs
    ignore = ("background_noise",)
    thresholds = (0.3, 0.5, 0.6, 0.8, 0.9, 0.95, 0.99)
    pts = sweep(probs, hop_s, events, dur, cats, thresholds, (smoothing,), ignore)
    keyword_events = tuple(e for e in events if e.label in cats)
    for pt in pts:
        ref = detection_metrics(probs, hop_s, events, dur, cats, pt.threshold, smoothing, ignore)
        # the reference counts the unknown word's events as misses; the sweep does not score them
        ref_kw = detection_metrics(probs, hop_s, keyword_events, dur, cats, pt.threshold, smoothing, ignore)
        assert (pt.hits, pt.false_accepts) == (ref.hits, ref.false_accepts), pt
        assert pt.hits + pt.misses == len(keyword_events) == ref_kw.hits + ref_kw.misses
    fas = [p.false_accepts for p in pts]
    assert fas[0] > fas[-1] and pts[0].frr < pts[-1].frr  # a real trade-off on this stream


def test_the_chosen_point_is_the_best_within_the_target(stream_probs):
    probs, hop_s, events, dur, cats = stream_probs
    for target in (0.0, 30.0, 300.0, 1e9):
        cal = calibrate(probs, hop_s, events, dur, cats, target_fa_per_hour=target)
        assert cal.ignore == ("background_noise",) and cal.others == sum(e.label == "hello" for e in events)
        assert len(cal.points) == len(DEFAULT_THRESHOLDS) * 4
        c = cal.chosen
        ok = [p for p in cal.points if p.fa_per_hour <= target]
        if ok:
            assert cal.met and c.fa_per_hour <= target
            assert c.frr == min(p.frr for p in ok)
            assert c.smoothing == min(p.smoothing for p in ok if p.frr == c.frr)
        else:
            assert not cal.met and c.false_accepts == min(p.false_accepts for p in cal.points)
    with pytest.raises(ValueError):
        choose([], 1.0)


def test_detector_settings_one_rule():
    clf = models.load_model(models.DEFAULT_CLASSIFIER)
    assert detector_settings(clf) == detector_settings(None)  # the bundled model stores none
    assert (detector_settings(clf).threshold, detector_settings(clf).smoothing) == (0.6, 0)
    clf.metadata[DETECTOR_KEY] = {"threshold": 0.83, "smoothing": 4}
    s = detector_settings(clf)
    assert (s.threshold, s.smoothing) == (0.83, 4) and s.source.count("from the model") == 2
    s = detector_settings(clf, threshold=0.5)
    assert (s.threshold, s.smoothing) == (0.5, 4) and "threshold 0.5 set" in s.source
    assert detector_settings(clf, 0.7, 0).smoothing == 0  # a user's 0 is a choice, not "unset"
    for bad in ({"threshold": 1.5, "smoothing": 0}, {"threshold": 0.5, "smoothing": -1}, {"threshold": "x"}, 3):
        clf.metadata[DETECTOR_KEY] = bad
        with pytest.raises(ModelFormatError, match=DETECTOR_KEY):
            detector_settings(clf)


def _list(clips, path: Path) -> Path:
    path.write_text("".join(f"{p}\n" for p, _ in clips))
    return path


def test_kws_calibrate_stores_the_point_that_run_and_eval_use(clips, shared_data, tmp_path, capsys):
    lst = _list(clips[::2], tmp_path / "held_out.txt")
    out, png, doc = tmp_path / "calibrated.kwm", tmp_path / "det.png", tmp_path / "det.json"
    args = ["calibrate", "-l", str(lst), "--noise-dir", str(shared_data / "background_noise"), "--gap-s", "1,3",
            "--target-fa-per-hour", "60", "-o", str(out), "--plot", str(png), "--json", str(doc)]
    assert kws(args) == 0
    text = capsys.readouterr().out
    assert "chosen: threshold" in text and "stored threshold" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    d = json.loads(doc.read_text())
    stored = modelfile.load(out).metadata[DETECTOR_KEY]
    assert stored["threshold"] == d["chosen"]["threshold"] and stored["smoothing"] == d["chosen"]["smoothing"]
    assert stored["calibration"]["target_fa_per_hour"] == 60 and d["positives"] == len(clips[::2])
    assert DETECTOR_KEY not in models.load_model(models.DEFAULT_CLASSIFIER).metadata  # the original is untouched
    # kws run takes the stored point unless told otherwise
    model = ["-f", str(models.DEFAULT_FEATURIZER), "-c", str(out)]
    wav = str(clips[1][0])
    rc = kws(["run", *model, "-w", wav])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"threshold {stored['threshold']:g} from the model, smoothing {stored['smoothing']} from the model" in err
    assert kws(["run", *model, "-w", wav, "--threshold", "0.5", "--smoothing", "0"]) == 0
    assert "from the model" not in capsys.readouterr().err
    # kws eval --stream scores with it
    assert kws(["eval", *model, "-l", str(lst), "--stream", "--quiet", "--json", str(tmp_path / "e.json")]) == 0
    assert "from the model" in capsys.readouterr().out
    e = json.loads((tmp_path / "e.json").read_text())["stream"]
    assert (e["threshold"], e["smoothing"]) == (stored["threshold"], stored["smoothing"])
    # --in-place on a .kwm; refused for a model that is not ours
    copy = tmp_path / "copy.kwm"
    shutil.copy(models.DEFAULT_CLASSIFIER, copy)
    assert kws(["calibrate", "-f", str(models.DEFAULT_FEATURIZER), "-c", str(copy), "-l", str(lst),
                "--max-tests", "10", "--in-place"]) == 0
    assert DETECTOR_KEY in modelfile.load(copy).metadata
    devkit = shared_data / "ell_devkit_model"
    capsys.readouterr()
    assert kws(["calibrate", "-f", str(devkit / "featurizer.ell"), "-c", str(devkit / "classifier.ell"),
                "--categories", str(devkit / "categories.txt"), "-l", str(lst), "--in-place"]) == 2
    assert "--in-place" in capsys.readouterr().err
    assert kws(["calibrate", "-l", str(lst), "--ignore", "nosuchclass"]) == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_stream_of_unreadable_clips_is_refused_with_a_file_name(tmp_path, shared_data):
    bad = tmp_path / "not_audio.wav"
    bad.write_bytes(b"this is not a wav file")
    noise = sorted((shared_data / "background_noise").glob("*.wav"))[:1]
    with pytest.raises(DataError, match="none of the 1 clips could be read.*not_audio.wav"):
        assemble_stream([(bad, "bed")], 16000, noise_files=noise)
