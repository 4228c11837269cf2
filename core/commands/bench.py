"""Time featurizer + classifier per frame in our runtimes beside the peers (numpy, PyTorch,
onnxruntime), in one run. Speed claims live here, never in tests."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

DEVKIT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ell_devkit_model"


def add_arguments(p):
    p.add_argument("--featurizer", "-f", help="featurizer model (default: the DevKit featurizer.ell)")
    p.add_argument("--classifier", "-c", help="classifier model (default: the DevKit classifier.ell)")
    p.add_argument("--frames", type=int, default=2000, help="frames per measurement (2000)")
    p.add_argument("--threads", type=int, default=1, help="threads for the peers (1)")


def per_frame_us(fn, frames: int, repeat: int = 3) -> float:
    """Best of `repeat` runs of `frames` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(frames):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / frames)
    return best * 1e6


def _row(name: str, us: float, note: str = "") -> None:
    print(f"  {name:<44} {us:10.1f} us/frame  {note}")


def main(args) -> int:
    from core import models
    from core.graph.interpreter import Interpreter
    from core.graph.summary import stats

    feat_path = args.featurizer or DEVKIT / "featurizer.ell"
    clf_path = args.classifier or DEVKIT / "classifier.ell"
    featurizer, classifier = models.load_model(feat_path), models.load_model(clf_path)
    rng = np.random.default_rng(0)
    n = args.frames
    audio = (rng.standard_normal((n, featurizer.input_size)) * 0.1).astype(np.float32)
    feats = rng.standard_normal((n, classifier.input_size)).astype(np.float32)
    s = stats(classifier)
    print(f"models: {feat_path} + {clf_path}")
    print(f"classifier: {s['params']} parameters, {s['weight_bytes'] / 1024:.0f} KiB weights, "
          f"{s['macs']} MACs/frame; featurizer {stats(featurizer)['macs']} MACs/frame")

    print("featurizer (one hop in, one frame out):")
    fi = Interpreter(featurizer)
    _row("kwsgui interpreter (numpy)", per_frame_us(lambda i: fi.step(audio[i]), n))
    fb = featurizer.by_op("filterbank")[0].params["weights"].T.astype(np.float32)
    win = np.hamming(featurizer.by_op("frame_buffer")[0].attrs["window_size"]).astype(np.float32)
    buf = np.zeros(len(win), np.float32)
    hop = featurizer.input_size

    def numpy_feat(i):
        buf[:-hop] = buf[hop:]
        buf[-hop:] = audio[i]
        np.log(np.abs(np.fft.rfft(buf * win)) @ fb + 1)

    _row("plain numpy (rfft + mel + log)", per_frame_us(numpy_feat, n), "peer")

    print("classifier (one feature frame in, probabilities out, state kept):")
    ci = Interpreter(classifier)
    _row("kwsgui interpreter (numpy)", per_frame_us(lambda i: ci.step(feats[i]), n))
    try:
        _bench_peers(classifier, feats, n, args.threads)
    except ImportError as e:
        print(f"  (peers unavailable: {e})")

    print("featurizer + classifier:")
    both = Interpreter(featurizer), Interpreter(classifier)
    _row("kwsgui interpreter (numpy)", per_frame_us(lambda i: both[1].step(both[0].step(audio[i])), n))
    return 0


def _bench_peers(classifier, feats, n, threads):
    import onnxruntime as ort
    import torch

    from core.graph.to_torch import build_module, export_streaming_onnx, sigmoid_gated

    torch.set_num_threads(threads)
    g = sigmoid_gated(classifier)
    note = "peer (sigmoid gates)" if g is not classifier else "peer"
    m = build_module(g)
    state = m.initial_state()
    xt = torch.from_numpy(feats).reshape(n, 1, 1, -1)

    def torch_step(i):
        nonlocal state
        with torch.inference_mode():
            out = m(xt[i], *state)
        state = list(out[1:])

    _row("PyTorch eager", per_frame_us(torch_step, n), note)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clf.onnx"
        names = export_streaming_onnx(g, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        st = {k: v.numpy() for k, v in zip(names, m.initial_state())}
        xs = feats.reshape(n, 1, 1, -1)

        def ort_step(i):
            out = sess.run(None, {"x": xs[i], **st})
            for k, v in zip(names, out[1:]):
                st[k] = v

        _row("onnxruntime (streaming, state in/out)", per_frame_us(ort_step, n), note)
