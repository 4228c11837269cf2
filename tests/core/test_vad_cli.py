"""kws vad (segments, --plot, --json), kws vad-tune (JSON that add-vad and eval take) and
kws eval --compare (the three modes in one run) on real clips with the DevKit model."""

import json

import numpy as np
import pytest

from core.cli import main as kws
from core.vad.params import load_params


@pytest.fixture(scope="module")
def dk(shared_data):
    d = shared_data / "ell_devkit_model"
    return {"f": str(d / "featurizer.ell"), "c": str(d / "classifier.ell"), "cat": str(d / "categories.txt")}


@pytest.fixture(scope="module")
def small_list(shared_data, tmp_path_factory):
    """24 real clips: 3 of each of 8 words."""
    root = shared_data / "speech_commands_v0.01_sample"
    words = [d for d in sorted(root.iterdir()) if d.is_dir()][:8]
    lines = [str(p) for d in words for p in sorted(d.glob("*.wav"))[:3]]
    path = tmp_path_factory.mktemp("lists") / "small.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_vad_prints_segments_and_writes_plot_and_json(dk, shared_data, tmp_path, capsys):
    wav = shared_data / "ell_examples" / "seven.wav"
    png, js = tmp_path / "v.png", tmp_path / "v.json"
    assert kws(["vad", str(wav), "-f", dk["f"], "--plot", str(png), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "31 frames of 32 ms" in out and "1 voice segment(s)" in out
    assert "0.160 s -   0.544 s" in out  # the word, with ELL's default parameters
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    doc = json.loads(js.read_text())
    assert len(doc["frames"]["signal"]) == 31 and doc["segments"] == [{"start_s": 0.16, "end_s": 0.544}]
    assert doc["reset_frames"] == [17]
    # the DevKit's own VAD splits the word; a hangover joins it again
    assert kws(["vad", str(wav), "-f", dk["f"], "-c", dk["c"]]) == 0
    assert "2 voice segment(s)" in capsys.readouterr().out
    assert kws(["vad", str(wav), "-f", dk["f"], "-c", dk["c"], "--hold-frames", "2"]) == 0
    assert "reset after frame(s): 17 " in capsys.readouterr().out


def test_vad_bad_parameter_is_a_clear_error(dk, shared_data, capsys):
    wav = shared_data / "ell_examples" / "seven.wav"
    assert kws(["vad", str(wav), "-f", dk["f"], "--threshold-up", "0.5", "--threshold-down", "0.9"]) == 2
    err = capsys.readouterr().err
    assert "threshold_down" in err and "Traceback" not in err


def test_vad_tune_writes_parameters_add_vad_and_eval_use(dk, small_list, shared_data, tmp_path, capsys):
    best = tmp_path / "best.json"
    argv = ["vad-tune", "-f", dk["f"], "-c", dk["c"], "-cat", dk["cat"], "-l", str(small_list), "--noise-dir",
            str(shared_data / "background_noise"), "--snr-db", "20", "--trials", "8", "--seed", "2",
            "--threshold-up", "40", "--threshold-down", "0.05", "-o", str(best),
            "--json", str(tmp_path / "r.json")]
    assert kws(argv) == 0
    out = capsys.readouterr().out
    for row in ("continuous (no VAD)", "start (given)", "tuned", "reset per clip", "best parameters:"):
        assert row in out
    params = load_params(best)
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["history"]) == 8 and report["best"]["accuracy"] > report["start"]["accuracy"]
    assert json.loads(best.read_text())["tuning"]["clips"] == 24
    # add-vad takes the file; eval compares with it
    model = tmp_path / "tuned.kwm"
    assert kws(["add-vad", dk["c"], "-o", str(model), "--params", str(best)]) == 2
    assert "--featurizer" in capsys.readouterr().err and not model.exists()
    assert kws(["add-vad", dk["c"], "-o", str(model), "--params", str(best), "-f", dk["f"]]) == 0
    from core.graph import modelfile
    from core.vad.model import model_vad

    assert model_vad(modelfile.load(model))[0] == params
    js = tmp_path / "eval.json"
    assert kws(["eval", "-f", dk["f"], "-c", dk["c"], "-cat", dk["cat"], "-l", str(small_list), "--compare",
                "--vad-params", str(best), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "VAD: given parameters" in out
    for title in ("reset per clip", "continuous ", "continuous + VAD"):
        assert title in out
    doc = json.loads(js.read_text())
    assert set(doc["list_results"]) == {"reset", "continuous", "vad"}
    assert doc["vad_params"] == params.to_dict()


def test_eval_compare_devkit_own_vad_on_list_and_stream(dk, small_list, shared_data, tmp_path, capsys):
    js = tmp_path / "e.json"
    assert kws(["eval", "-f", dk["f"], "-c", dk["c"], "-cat", dk["cat"], "-l", str(small_list), "--compare",
                "--stream", "--noise-dir", str(shared_data / "background_noise"), "--snr-db", "20",
                "--ignore", "background_noise", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "VAD: the model's own VAD" in out and "stream accuracy" in out and "wins back" in out
    doc = json.loads(js.read_text())
    rate = {m: r["pass_rate"] for m, r in doc["list_results"].items()}
    assert rate["reset"] > rate["continuous"] and rate["vad"] > rate["continuous"]
    s = doc["stream"]["modes"]
    assert s["reset"]["resets"] == 24 and s["continuous"]["resets"] == 0 and s["vad"]["resets"] > 24
    assert np.isclose(doc["gap_recovered_list"],
                      (rate["vad"] - rate["continuous"]) / (rate["reset"] - rate["continuous"]))


def test_modes_flag_is_checked(dk, small_list, capsys):
    assert kws(["eval", "-f", dk["f"], "-c", dk["c"], "-cat", dk["cat"], "-l", str(small_list),
                "--modes", "reset,sometimes"]) == 2
    assert "--modes" in capsys.readouterr().err
