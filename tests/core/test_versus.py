"""`kws versus`: two models side by side on held-out lists."""

import json

import pytest

from core.cli import main
from core.evaluate.passrate import evaluate_clips, play_order, read_list
from core.models import load_categories, load_model
from core.pipeline import KeywordSpotter
from core.vad.model import strip_vad

pytestmark = pytest.mark.shared


def test_versus_prints_both_models_per_list(shared_data, tmp_path, capsys):
    root = shared_data / "speech_commands_v0.01_sample"
    m = shared_data / "ell_devkit_model"
    lists = []
    for name, words in (("a", ("yes", "no")), ("b", ("bed", "cat", "seven"))):
        lines = [f"{w}/{p.name}" for w in words for p in sorted((root / w).glob("*.wav"))[:2]]
        (root_list := tmp_path / f"{name}.txt").write_text("\n".join(str(root / ln) for ln in lines) + "\n")
        lists.append(root_list)
    rc = main(["versus", "-f", str(m / "featurizer.ell"), "-c", str(m / "classifier.ell"), "-cat",
               str(m / "categories.txt"), "--other", str(m), "-l", str(lists[0]), "-l", str(lists[1]),
               "--shuffles", "2", "--json", str(tmp_path / "t.json")])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert "ours reset" in out[0] and [ln.split()[0] for ln in out[1:3]] == ["a", "b"]
    rows = json.loads((tmp_path / "t.json").read_text())
    feat, clf = load_model(m / "featurizer.ell"), load_model(m / "classifier.ell")
    cats = load_categories(m / "categories.txt")
    for row, lst in zip(rows, lists):
        clips = read_list(lst)
        assert row["clips"] == len(clips) == 4 + 2 * (row["name"] == "b")
        ours = evaluate_clips(KeywordSpotter(feat, strip_vad(clf)), cats, clips, reset=True)
        other = evaluate_clips(KeywordSpotter(feat, strip_vad(clf)), cats, clips, reset=True)
        assert (row["ours_reset"], row["other_reset"]) == (ours.rate, other.rate)
        # both continuous with their own VADs, over the same shuffled orders (seeds 0 and 1), averaged
        rates = [evaluate_clips(KeywordSpotter(feat, clf), cats, play_order(clips, continuous=True, seed=s)[0],
                                reset=False).rate for s in (0, 1)]
        assert row["ours_continuous"] == row["other_continuous"] == pytest.approx(sum(rates) / 2)
