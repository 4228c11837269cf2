"""The exported folder on this machine: built with cmake + make from its README alone, the demo
prints the host's detections, the Python wrapper classifies seven.wav, and the exported library
agrees with the interpreter within 1e-5 frame by frame. Labels with awkward characters survive."""

import re
import subprocess
import sys

import numpy as np
import pytest
from compiler_helpers import clip_hops, float32_rtol, real_clips, rel_err

from core.audio.wav import read_wav
from core.compiler.export import export
from core.compiler.runtime import CompiledModel
from core.compiler.targets import Target
from core.graph.interpreter import Interpreter
from core.pipeline import Detector, KeywordSpotter

pytestmark = pytest.mark.shared


def readme_block(readme: str, heading: str) -> list[str]:
    """The command lines of the first ```sh block under a `## heading...` section."""
    section = readme.split(f"\n## {heading}", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip() and not ln.startswith("#")]


def build_from_readme(folder, env=None) -> None:
    for cmd in readme_block((folder / "README.md").read_text(), "Build"):
        out = subprocess.run(["bash", "-c", cmd], cwd=folder, capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"


def host_detections(devkit, path, **kw) -> list[str]:
    feat, clf, cats = devkit
    spotter = KeywordSpotter(feat, clf, backend="compiled")
    det = Detector(cats, **kw)
    x, _ = read_wav(path)
    _, probs = spotter.process(x)
    return [d.line() for d in (det.update(p) for p in probs) if d is not None]


@pytest.fixture(scope="module")
def host_export(devkit, tmp_path_factory):
    feat, clf, cats = devkit
    out = tmp_path_factory.mktemp("export") / "kws_host"
    result = export(
        [feat, clf],
        out,
        target=Target.host(),
        module_name="kws",
        categories=cats,
        sources=["featurizer.ell", "classifier.ell"],
    )
    assert result.demo
    build_from_readme(out)
    return out


def test_folder_contents(host_export):
    names = {p.name for p in host_export.iterdir()}
    assert {
        "kws.o",
        "kws.h",
        "kws_api.c",
        "kws_demo.c",
        "CMakeLists.txt",
        "kws.py",
        "categories.txt",
        "README.md",
        "build",
    } <= names
    h = (host_export / "kws.h").read_text()
    for sym in (
        "kws_create",
        "kws_destroy",
        "kws_reset",
        "kws_predict(",
        "kws_predict_frames",
        "kws_input_size",
        "kws_output_size",
        "kws_metadata",
        "#define KWS_INPUT_SIZE 512",
        "#define KWS_OUTPUT_SIZE 31",
    ):
        assert sym in h
    assert (host_export / "build" / "libkws.so").exists() and (host_export / "build" / "kws_demo").exists()


@pytest.mark.parametrize("clip", ["seven.wav", "bed.wav", "seven_tutorial.wav"])
def test_demo_prints_the_host_detections(host_export, devkit, shared_data, clip):
    path = shared_data / "ell_examples" / clip
    out = subprocess.run([host_export / "build" / "kws_demo", path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("<<<")] == host_detections(devkit, path)
    assert lines[-1].startswith("Average processing time: ") and float(lines[-1].split(": ")[1]) < 0.01
    word = clip.split("_")[0].removesuffix(".wav")
    assert any(ln.endswith(f"% {word} >>>") for ln in lines)


def test_demo_options_and_raw_pcm_from_stdin(host_export, devkit, shared_data):
    path = shared_data / "ell_examples" / "seven.wav"
    x, _ = read_wav(path)
    raw = (x * 32768).astype("<i2").tobytes()
    out = subprocess.run(
        [host_export / "build" / "kws_demo", "--threshold", "0.5", "--smoothing", "2", "-"],
        input=raw,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0
    got = [ln for ln in out.stdout.decode().splitlines() if ln.startswith("<<<")]
    assert got == host_detections(devkit, path, threshold=0.5, smoothing=2) and got
    bad = subprocess.run(
        [host_export / "build" / "kws_demo", shared_data / "ell_examples" / "VadData.txt"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 0 and "DETECTED" not in bad.stdout  # raw PCM of text: runs, detects nothing


def test_exported_library_matches_the_interpreter(host_export, devkit, shared_data):
    """Frame by frame over real clips: the built shared library (via the generated wrapper, in
    a fresh interpreter) vs the numpy interpreter, probabilities within 1e-5 relative."""
    feat, clf, _ = devkit
    clips = real_clips(shared_data, per_word=1, words=10)
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import kws; m = kws.Model()\n"
        "for p in sys.argv[2:]:\n"
        "    m.reset(); np.save(p + '.npy', m.classify(kws.read_wav(p.split('|')[0], 16000)))\n"
    )
    tmp = host_export / "probs"
    tmp.mkdir(exist_ok=True)
    args = []
    for i, c in enumerate(clips):
        link = tmp / f"{i}.wav"
        link.write_bytes(c.read_bytes())
        args.append(str(link))
    out = subprocess.run(
        [sys.executable, "-c", code, str(host_export), *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    fi, ci = Interpreter(feat), Interpreter(clf)
    for a, c in zip(args, clips):
        fi.reset()
        ci.reset()
        x = clip_hops(c, 512)
        ref = ci.run(fi.run(x))
        got = np.load(a + ".npy")
        assert got.shape == ref.shape and rel_err(got, ref) <= float32_rtol([feat, clf], x), c


def test_python_wrapper_classifies_seven(host_export, shared_data):
    out = subprocess.run(
        [sys.executable, "kws.py", shared_data / "ell_examples" / "seven.wav"],
        cwd=host_export,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"seven.wav: seven [01]\.\d{3} \(frame \d+\)", out.stdout), out.stdout


def test_demo_and_jit_probabilities_agree(host_export, devkit, shared_data):
    path = shared_data / "ell_examples" / "bed.wav"
    out = subprocess.run(
        [host_export / "build" / "kws_demo", "--probs", path], capture_output=True, text=True, timeout=60
    )
    probs = np.array([[float(v) for v in ln.split()[1:]] for ln in out.stdout.splitlines()], np.float32)
    jit = CompiledModel(list(devkit[:2]), "kws").run(clip_hops(path, 512))
    assert rel_err(probs, jit) <= 1e-6  # same object code; only the %.9g printing differs


def test_labels_and_metadata_are_escaped(devkit, tmp_path):
    feat, clf, cats = devkit
    weird = list(cats)
    weird[1] = 'say "bed" \\ now??=/*x*/'
    weird[2] = "vögel ünd ☂"
    weird[3] = "%s%d"
    out = tmp_path / "esc"
    export([feat, clf], out, target=Target.host(), module_name="esc_model", categories=weird)
    build_from_readme(out)
    labels = subprocess.run([out / "build" / "esc_model_demo", "--labels"], capture_output=True, timeout=60)
    assert labels.stdout.decode("utf-8").splitlines() == weird
    meta = subprocess.run([out / "build" / "esc_model_demo", "--metadata"], capture_output=True, timeout=60)
    import json

    assert json.loads(meta.stdout.decode("utf-8"))["categories"] == weird
    code = "import sys\nsys.path.insert(0, sys.argv[1])\nimport esc_model\nprint(esc_model.Model().categories[1:4])"
    py = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=60)
    assert py.stdout.strip() == repr(weird[1:4])


def test_featurizer_and_classifier_compile_separately(devkit, tmp_path, shared_data):
    """As ELL does: two modules, chained by the caller, same probabilities as one module."""
    feat, clf, _ = devkit
    for g, name in ((feat, "featurizer"), (clf, "classifier")):
        r = export(g, tmp_path / name, target=Target.host(), module_name=name)
        assert not r.demo and (tmp_path / name / f"{name}.h").exists()
        assert (tmp_path / name / "categories.txt").exists() == (name == "classifier")
        build_from_readme(tmp_path / name)
    code = (
        "import sys, numpy as np; sys.path[:0] = sys.argv[1:3]; import featurizer, classifier\n"
        "f, c = featurizer.Model(), classifier.Model(); x = np.load(sys.argv[3])\n"
        "np.save(sys.argv[3], c.predict_frames(f.predict_frames(x)))\n"
    )
    x = clip_hops(shared_data / "ell_examples" / "seven.wav", 512)
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "featurizer"),
            str(tmp_path / "classifier"),
            str(tmp_path / "x.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    ref = Interpreter(clf).run(Interpreter(feat).run(x))
    assert rel_err(np.load(tmp_path / "x.npy"), ref) <= float32_rtol([feat, clf], x)


def _zoo(seed: int = 0):
    """A featurizer with pre-emphasis and DCT, and a classifier with a VAD, conv, pool, affine,
    layer norm, LSTM and GRU (both reset by the VAD), dense and softmax: most node kinds at once."""
    from core.features.featurizer import FeaturizerConfig, build_featurizer
    from core.graph.ir import Graph, Node

    rng = np.random.default_rng(seed)

    def u(*shape, s=0.3):
        return rng.uniform(-s, s, shape).astype(np.float32)

    feat = build_featurizer(FeaturizerConfig(hop_length=256, n_filters=40, preemphasis=0.97, dct=True))
    vad = {
        "tau_up": 1.54,
        "tau_down": 0.074326,
        "large_input": 2.40016,
        "gain_att": 0.002885,
        "threshold_up": 3.552713,
        "threshold_down": 0.931252,
        "level_threshold": 0.007885,
        "frame_duration": 0.016,
        "sample_rate": 16000.0,
    }
    nodes = [
        Node("x", "input", [], {"size": 40}),
        Node("v", "vad", ["x"], vad),
        Node("s", "scale", ["x"], {"factor": 0.05}),
        Node(
            "c",
            "conv",
            ["s"],
            {"in_channels": 40, "out_channels": 16, "kernel_t": 3},
            {"weight": u(16, 40, 3, 1), "bias": u(16)},
        ),
        Node("p", "pool", ["c"], {"kind": "max", "in_channels": 16, "kernel_t": 2}),
        Node("a", "affine", ["p"], {}, {"scale": u(16) + 1, "shift": u(16)}),
        Node("n", "layer_norm", ["a"], {"n_axes": 1}, {"scale": u(16) + 1, "bias": u(16)}),
        Node(
            "l",
            "lstm",
            ["n", "v"],
            {"hidden_size": 24},
            {"w_ih": u(96, 16), "w_hh": u(96, 24), "b_ih": u(96), "b_hh": u(96)},
        ),
        Node(
            "g",
            "gru",
            ["l", "v"],
            {"hidden_size": 20, "gate_activation": "hard_sigmoid"},
            {"w_ih": u(60, 24), "w_hh": u(60, 20), "b_ih": u(60), "b_hh": u(60)},
        ),
        Node("d", "dense", ["g"], {}, {"weight": u(12, 20, s=1.0), "bias": u(12)}),
        Node("o_s", "softmax", ["d"]),
        Node("o", "output", ["o_s"]),
    ]
    return feat, Graph(nodes, {"kind": "classifier", "categories": [f"k{i}" for i in range(12)]})


def test_exported_zoo_matches_the_interpreter(tmp_path, shared_data):
    feat, clf = _zoo()
    out = tmp_path / "zoo"
    export([feat, clf], out, target=Target.host(), module_name="zoo")
    build_from_readme(out)
    clips = real_clips(shared_data, per_word=1, words=3)
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import zoo; m = zoo.Model()\n"
        "for p in sys.argv[2:]:\n"
        "    m.reset(); np.save(p + '.npy', m.classify(zoo.read_wav(p, 16000)))\n"
    )
    args = []
    for i, c in enumerate(clips):
        (tmp_path / f"{i}.wav").write_bytes(c.read_bytes())
        args.append(str(tmp_path / f"{i}.wav"))
    run = subprocess.run([sys.executable, "-c", code, str(out), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    fi, ci = Interpreter(feat), Interpreter(clf)
    resets = 0
    for a, c in zip(args, clips):
        fi.reset()
        ci.reset()
        x = clip_hops(c, 256)
        vals = ci.run_all(fi.run(x))
        v = vals["v"][:, 0]
        resets += int(((v[:-1] == 1) & (v[1:] == 0)).sum())
        assert rel_err(np.load(a + ".npy"), vals["o"]) <= float32_rtol([feat, clf], x), c
    assert resets >= 1
