"""Time featurizer + classifier per frame in our runtimes (compiled native code, numpy
interpreter) beside the peers (onnxruntime streaming with state in/out, PyTorch eager, plain
numpy, OpenBLAS reading the same weights), in one run, for two models: the ELL tutorial recipe
(80 mel, 512 window, 2 x GRU 128, 31 classes; random weights, seeded) and the real DevKit model
(../shared/data). Prints multiply-adds and weight bytes per frame and the achieved GFLOP/s and
weight bandwidth, so the distance to the machine's limit is visible. A resample section times
our resampler beside its peers and measures their accuracy (core.audio.resample_bench). Speed
claims live here, never in tests."""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEVKIT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ell_devkit_model"


def add_arguments(p):
    p.add_argument("--featurizer", "-f", help="also time this featurizer ...")
    p.add_argument("--classifier", "-c", help="... with this classifier")
    p.add_argument(
        "--models", default="ell,devkit", help="built-in model sets to time: ell,devkit (default both)"
    )
    p.add_argument("--frames", type=int, default=1000, help="frames per measurement (1000)")
    p.add_argument("--repeat", type=int, default=7, help="measurements per row, the best counts (7)")
    p.add_argument("--threads", type=int, default=1, help="threads for the peers (1)")
    p.add_argument("--no-peers", action="store_true", help="skip onnxruntime and PyTorch")
    p.add_argument("--no-resample", action="store_true",
                   help="skip the resample section (ours = soxr HQ beside soxr VHQ, scipy's polyphase, librosa)")
    p.add_argument("--data", action="store_true",
                   help="also time dataset building and each augmentation beside librosa")
    p.add_argument("--train", action="store_true",
                   help="also time training and compare the ELL recipe with ours on the same data")
    p.add_argument("--train-data", metavar="DIR", help="featurized splits for --train (default: the real sample)")
    p.add_argument("--train-epochs", type=int, default=10, metavar="N", help="epochs per model for --train")
    p.add_argument("--gui", action="store_true",
                   help="instead: the GUI's worst stall while training, building, compiling and tuning run, and "
                        "the live view's frame rate (runs `python -m kwsgui.bench`; Qt stays out of core)")


REPEAT = 7  # best of 7 short runs: robust against other processes on a small machine


def per_frame_us(fn, frames: int, repeat: int | None = None) -> float:
    """Best of `repeat` runs of `frames` calls, in microseconds per call."""
    repeat = repeat or REPEAT
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(frames):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / frames)
    return best * 1e6


def block_us(fn, frames: int, repeat: int | None = None) -> float:
    """Best of `repeat` single calls covering `frames` frames, in microseconds per frame."""
    repeat = repeat or REPEAT
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / frames * 1e6


def ell_recipe(seed: int = 0):
    """The ELL tutorial recipe with random weights: 80 mel / 512 window + GRU128 x 2 + dense 31."""
    from core.features.featurizer import FeaturizerConfig, build_featurizer
    from core.graph.ir import chain

    rng = np.random.default_rng(seed)

    def u(shape, s):
        return rng.uniform(-s, s, shape).astype(np.float32)

    def gru(n_in, hid):
        s = 1 / np.sqrt(hid)
        return (
            "gru",
            {"hidden_size": hid, "gate_activation": "sigmoid"},
            {
                "w_ih": u((3 * hid, n_in), s),
                "w_hh": u((3 * hid, hid), s),
                "b_ih": u(3 * hid, s),
                "b_hh": u(3 * hid, s),
            },
        )

    feat = build_featurizer(
        FeaturizerConfig(sample_rate=16000, window_size=512, hop_length=512, n_filters=80)
    )
    clf = chain(
        [
            ("input", {"size": 80}, {}),
            gru(80, 128),
            gru(128, 128),
            ("dense", {}, {"weight": u((31, 128), 0.1), "bias": u(31, 0.1)}),
            ("softmax", {}, {}),
            ("output", {}, {}),
        ],
        {"kind": "classifier", "categories": [f"c{i}" for i in range(31)]},
    )
    return feat, clf


class Table:
    def __init__(self, macs: dict[str, int], weight_bytes: dict[str, int]):
        self.macs, self.weight_bytes = macs, weight_bytes
        self.rows: dict[str, dict[str, float]] = {}
        self.call_us: float | None = None  # a compiled no-op called per frame as the models are: the harness
        # paired(floor) -> per run, (our per-frame time, floor() measured right after it), microseconds
        self.paired: Callable[[Callable[[], float]], list[tuple[float, float]]] | None = None
        print(f"  {'runtime':<44}{'featurizer':>12}{'classifier':>12}{'both':>12}{'GFLOP/s':>9}{'GB/s':>7}")

    def row(
        self,
        name: str,
        feat: float | None = None,
        clf: float | None = None,
        both: float | None = None,
        note: str = "",
        weight_bytes: int | None = None,
    ) -> None:
        """`weight_bytes`: the classifier's weights this row reads, when not the model's own (int8)."""
        self.rows[name] = {"featurizer": feat, "classifier": clf, "both": both}

        def cell(v):
            return f"{v:9.1f} us" if v is not None else f"{'-':>12}"

        key, t = (
            ("both", both)
            if both is not None
            else ("classifier", clf)
            if clf is not None
            else ("featurizer", feat)
        )
        macs = sum(self.macs.values()) if key == "both" else self.macs.get(key, 0)
        wbytes = sum(self.weight_bytes.values()) if key == "both" else self.weight_bytes.get(key, 0)
        if weight_bytes is not None and key == "classifier":
            wbytes = weight_bytes
        gflops = f"{2 * macs / (t * 1e3):9.1f}" if t else f"{'':>9}"
        gbs = f"{wbytes / (t * 1e3):7.1f}" if t and wbytes else f"{'':>7}"
        print(f"  {name:<44}{cell(feat)}{cell(clf)}{cell(both)}{gflops}{gbs}  {note}".rstrip(), flush=True)


def bench_model(title: str, featurizer, classifier, n: int, threads: int, peers: bool) -> dict:
    from core.compiler.runtime import CompiledModel
    from core.graph.interpreter import Interpreter
    from core.graph.summary import stats

    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((n, featurizer.input_size)) * 0.1).astype(np.float32)
    fs, cs = stats(featurizer), stats(classifier)
    fs["needed_bytes"] = _needed_bytes(featurizer)
    print(f"\n== {title}")
    print(
        f"   per frame: featurizer {fs['macs']:,} multiply-adds, {fs['weight_bytes'] / 1024:.0f} KiB tables; "
        f"classifier {cs['macs']:,} multiply-adds, {cs['weight_bytes'] / 1024:.0f} KiB weights"
    )
    feats = Interpreter(featurizer).run(audio)
    t = Table(
        {"featurizer": fs["macs"], "classifier": cs["macs"]},
        {"featurizer": 0, "classifier": cs["weight_bytes"]},
    )

    t0 = time.perf_counter()
    cf, cc = CompiledModel(featurizer, "bench_f"), CompiledModel(classifier, "bench_c")
    both = CompiledModel([featurizer, classifier], "bench_fc")
    compile_s = time.perf_counter() - t0

    t.row(
        "compiled, one native call per frame",
        per_frame_us(native_step(cf, audio), n),
        per_frame_us(native_step(cc, feats), n),
        per_frame_us(native_step(both, audio), n),
        f"(compiled in {compile_s:.1f} s)",
    )
    t.call_us = per_frame_us(native_step(_noop(), np.zeros((n, 1), np.float32)), n)
    step_both = native_step(both, audio)
    t.paired = lambda floor: [(per_frame_us(step_both, n, 1), floor()) for _ in range(REPEAT)]
    print(f"  (of each per-call time, {t.call_us:.2f} us is the call from Python itself: a compiled no-op "
          f"called the same way)")
    out_f, out_c = np.empty((n, cf.output_size), np.float32), np.empty((n, cc.output_size), np.float32)
    t.row(
        f"compiled, one call per block of {n} frames",
        block_us(lambda: cf.run_into(audio, out_f), n),
        block_us(lambda: cc.run_into(feats, out_c), n),
        block_us(lambda: both.run_into(audio, out_c), n),
    )
    h16 = _fp16(t, featurizer, classifier, cc, audio, feats, n)
    q8 = _int8(t, classifier, feats, n)
    m = min(n, 500)
    fi, ci = Interpreter(featurizer), Interpreter(classifier)
    fi2, ci2 = Interpreter(featurizer), Interpreter(classifier)
    t.row(
        "numpy interpreter (step per frame)",
        per_frame_us(lambda i: fi.step(audio[i]), m),
        per_frame_us(lambda i: ci.step(feats[i]), m),
        per_frame_us(lambda i: ci2.step(fi2.step(audio[i])), m),
    )
    _numpy_featurizer(t, featurizer, audio, n)
    if peers:
        try:
            _peers(t, classifier, feats, n, threads)
        except ImportError as e:
            print(f"  (peers unavailable: {e})")
    _blas_limit(t, classifier, feats, n)
    comp = t.rows["compiled, one native call per frame"]
    ort = t.rows.get("onnxruntime (streaming, state in/out)", {}).get("classifier")
    if ort:
        print(
            f"  compiled vs onnxruntime, classifier per frame: {ort / comp['classifier']:.1f}x faster; "
            f"featurizer + classifier: {comp['both']:.1f} us per frame "
            f"({featurizer.input_size / _rate(featurizer) / (comp['both'] * 1e-6):.0f}x real time)"
        )
    _floor(t, fs, cs, q8, h16)
    return t.rows


def _needed_bytes(graph) -> int:
    """Bytes of parameters a frame must read at the least: a filterbank's non-zero weights only
    (a mel bank is ~2 % non-zero; the compiled code reads its bands), every other array whole."""
    total = 0
    for node in graph.nodes:
        for p in map(np.asarray, node.params.values()):
            total += (np.count_nonzero(p) if node.op == "filterbank" else p.size) * p.itemsize
    return total


def _noop():
    """A compiled model that copies one float: what a per-frame call costs without a model."""
    from core.compiler.runtime import CompiledModel
    from core.graph.ir import chain

    return CompiledModel(chain([("input", {"size": 1}, {}), ("output", {}, {})], {}), "bench_noop")


def native_step(m, x):
    """One compiled frame call on frame i of x, reading the frame where it lies (as a C caller
    passes its own buffer; no numpy copy, which cost ~0.4 us per call here) into the model's
    output buffer: what remains beside the native code is one ctypes call (~0.45 us here)."""
    x = np.ascontiguousarray(x, np.float32)
    base, stride = x.ctypes.data, x.strides[0]
    predict, ctx, out = m._predict, m._ctx, m._out_p

    def f(i):
        predict(ctx, base + i * stride, out)

    f.frames, f.model = x, m  # keep the array, and the model's code and context, alive while f is used
    return f


def _fp16(t: Table, featurizer, classifier, compiled, audio, feats, n) -> int:
    """The classifier compiled with float16 dense and recurrent weights (widened to float32 as they
    are loaded: half the bytes to stream, float32 arithmetic; exactly the float code run on the
    weights rounded to float16), per frame, and how far its probabilities move on these frames from
    `compiled` (the float32 classifier already timed)."""
    from core.compiler.kernels import MATVEC_WEIGHTS
    from core.compiler.runtime import CompiledModel

    opts = {"weights": "fp16"}
    ch = CompiledModel(classifier, "bench_c16", options=opts)
    both = CompiledModel([featurizer, classifier], "bench_fc16", options=opts)
    half = sum(np.asarray(p).size * (2 if key in MATVEC_WEIGHTS.get(node.op, ()) else np.asarray(p).itemsize)
               for node in classifier.nodes for key, p in node.params.items())
    t.row("compiled fp16 weights, one native call per frame", clf=per_frame_us(native_step(ch, feats), n),
          both=per_frame_us(native_step(both, audio), n), note=f"(weights {half / 1024:.0f} KiB)", weight_bytes=half)
    compiled.reset()
    ch.reset()
    moved = float(np.abs(ch.run(feats) - compiled.run(feats)).max())
    print(f"  fp16 weights: probabilities within {moved:.1e} of float32 weights on these {n} frames")
    return half


def _int8(t: Table, classifier, feats, n) -> None:
    """The classifier quantized to int8 (core.quantize: int8 weights per output channel, 8-bit
    activations; ranges calibrated on these timing frames, which changes no timing) compiled for
    this machine, per frame beside the float compiled classifier, and the weight bytes of both."""
    from core.compiler.runtime import CompiledModel
    from core.errors import KwsError
    from core.quantize import calibrate, quantize_graph, weight_bytes

    try:
        q = quantize_graph(classifier, calibrate(classifier, [feats]))
    except KwsError as e:  # nothing to quantize (no dense / GRU / LSTM node)
        print(f"  (int8: {e})")
        return
    cq = CompiledModel(q, "bench_q8")
    fb, qb = weight_bytes(classifier), weight_bytes(q)
    us = per_frame_us(native_step(cq, feats), n)
    t.row("compiled int8, one native call per frame", clf=us,
          note=f"(weights {qb / 1024:.0f} KiB)", weight_bytes=qb)
    fl = t.rows["compiled, one native call per frame"]["classifier"]
    print(f"  int8 vs float compiled classifier per frame: {us:.1f} us vs {fl:.1f} us ({fl / us:.2f}x faster); "
          f"weights {qb:,} bytes vs {fb:,} bytes ({fb / qb:.2f}x smaller)")
    return qb


def _floor(t: Table, fs: dict, cs: dict, q8_bytes: int | None, h16_bytes: int | None = None) -> None:
    """This machine's floor for a frame (core.compiler.roofline), measured now, beside our times:
    each stage at least its bytes over the read bandwidth of the cache level they fit in and at
    least its FLOPs over the float32 FMA rate (the featurizer's FFT and filterbank run in float32
    vector code too)."""
    from core.compiler import roofline

    caches = roofline.cache_levels()
    k = roofline.Kernels()
    fl32 = roofline.fma_rate(k, REPEAT)

    def bw(nbytes):
        lvl = roofline.residence(nbytes, caches)
        return (f"L{lvl}" if lvl else "memory"), roofline.read_bandwidth(max(nbytes, 4096), k, REPEAT)

    cw, fw = cs["weight_bytes"], fs.get("needed_bytes", fs["weight_bytes"])
    (cl, cbw), (fl_, fbw) = bw(cw), bw(fw)
    f_floor = roofline.floor_us(fw, 2 * fs["macs"], fbw, fl32)
    c_floor = roofline.floor_us(cw, 2 * cs["macs"], cbw, fl32)
    desc = ", ".join(f"L{lv} {sz // 1024} KiB" for lv, _, sz in caches) or "cache sizes unknown"
    print(f"  machine floor ({desc}; one core, measured now with compiled kernels):")
    bound = "bandwidth" if cw / cbw >= 2 * cs["macs"] / fl32 else "FLOP"
    print(f"    classifier weights {cw / 1024:.0f} KiB live in {cl}: read {cbw:.0f} GB/s; float32 FMA "
          f"{fl32:.0f} GFLOP/s -> classifier floor {c_floor:.2f} us ({bound}-bound), "
          f"featurizer floor {f_floor:.2f} us ({fw / 1024:.1f} KiB of non-zero tables in {fl_}, "
          f"{2 * fs['macs']:,} FLOP)")
    comp = t.rows["compiled, one native call per frame"]
    block = t.rows.get(next((r for r in t.rows if r.startswith("compiled, one call per block")), ""), {})
    floor = f_floor + c_floor
    parts = [f"featurizer + classifier {comp['both']:.1f} us per frame = {comp['both'] / floor:.2f}x the floor "
             f"{floor:.2f} us"]
    if t.call_us is not None:
        parts.append(f"{(comp['both'] - t.call_us) / floor:.2f}x net of the {t.call_us:.2f} us call from Python")
    if block.get("both"):
        parts.append(f"{block['both'] / floor:.2f}x in block calls")
    parts.append(f"classifier alone {comp['classifier'] / c_floor:.2f}x")
    h16 = t.rows.get("compiled fp16 weights, one native call per frame", {})
    if h16.get("both") and h16_bytes:
        (hl, hbw) = bw(h16_bytes)
        h_floor = f_floor + roofline.floor_us(h16_bytes, 2 * cs["macs"], hbw, fl32)
        parts.append(f"with fp16 weights {h16['both']:.1f} us = {h16['both'] / floor:.2f}x the float32 floor "
                     f"({h16['both'] / h_floor:.2f}x its own {h_floor:.2f} us, {h16_bytes / 1024:.0f} KiB in {hl})")
    q8 = t.rows.get("compiled int8, one native call per frame", {}).get("classifier")
    if q8 and q8_bytes:
        ql, qbw = bw(q8_bytes)
        q_floor = roofline.floor_us(q8_bytes, 2 * cs["macs"], qbw, 4 * fl32)  # 4 int8 products per float lane
        parts.append(f"int8 classifier {q8 / q_floor:.2f}x its floor {q_floor:.2f} us ({q8_bytes / 1024:.0f} KiB "
                     f"in {ql})")
    print("    ours: " + "; ".join(parts))
    if t.paired is not None:
        runs = t.paired(lambda: f_floor + roofline.floor_us(
            cw, 2 * cs["macs"], roofline.read_bandwidth(max(cw, 4096), k, 1), fl32))
        ratios = sorted(us / f for us, f in runs)
        net = (f", {statistics.median((us - t.call_us) / f for us, f in runs):.2f}x net of the call from Python"
               if t.call_us is not None else "")
        print(f"    paired (each of {len(ratios)} runs of featurizer + classifier, one call per frame, timed "
              f"right before a bandwidth measurement of its own, so both see the same load): "
              f"median {statistics.median(ratios):.2f}x the floor (runs {ratios[0]:.2f}-{ratios[-1]:.2f}x){net}")


def _numpy_featurizer(t: Table, featurizer, audio, n) -> None:
    fbs, fbufs = featurizer.by_op("filterbank"), featurizer.by_op("frame_buffer")
    if not fbs or not fbufs:
        return
    fb = fbs[0].params["weights"].T.astype(np.float32)
    win = np.hamming(fbufs[0].attrs["window_size"]).astype(np.float32)
    buf = np.zeros(len(win), np.float32)
    hop = featurizer.input_size
    nfft = featurizer.by_op("fft_mag")[0].attrs["n_fft"]

    def numpy_feat(i):
        if hop < len(buf):
            buf[:-hop] = buf[hop:]
        buf[-hop:] = audio[i][-len(buf) :]
        np.log(np.abs(np.fft.rfft(buf * win, nfft))[: fb.shape[0]] @ fb + 1)

    t.row("plain numpy (rfft + mel + log)", feat=per_frame_us(numpy_feat, n), note="peer")


def _peers(t: Table, classifier, feats, n, threads) -> None:
    import onnxruntime as ort
    import torch

    from core.graph.to_torch import build_module, export_streaming_onnx, sigmoid_gated
    from core.quiet import onnx_export_warnings

    torch.set_num_threads(threads)
    g = sigmoid_gated(classifier)
    note = (
        "peer"
        + (
            " (sigmoid gates)"
            if any(n.attrs.get("gate_activation") == "hard_sigmoid" for n in classifier.nodes)
            else ""
        )
        + (", no VAD" if classifier.by_op("vad") else "")
    )
    m = build_module(g)
    state = m.initial_state()
    xt = torch.from_numpy(feats).reshape(len(feats), 1, 1, -1)

    def torch_step(i):
        nonlocal state
        with torch.inference_mode():
            out = m(xt[i], *state)
        state = list(out[1:])

    t.row("PyTorch eager", clf=per_frame_us(torch_step, min(n, 1000)), note=note)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clf.onnx"
        with onnx_export_warnings():
            names = export_streaming_onnx(g, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        st = {k: v.numpy() for k, v in zip(names, m.initial_state())}
        xs = feats.reshape(len(feats), 1, 1, -1)

        def ort_step(i):
            out = sess.run(None, {"x": xs[i], **st})
            for k, v in zip(names, out[1:]):
                st[k] = v

        t.row("onnxruntime (streaming, state in/out)", clf=per_frame_us(ort_step, n), note=note)


def _blas_limit(t: Table, classifier, feats, n) -> None:
    """OpenBLAS GEMVs over the classifier's weight matrices, nothing else: a practical floor for
    a frame whose weights stream from cache once (numpy call overhead included)."""
    mats = [
        (p.astype(np.float32), None)
        for node in classifier.nodes
        for k, p in node.params.items()
        if p.ndim == 2
    ]
    if not mats:
        return
    vecs = [np.ones(w.shape[1], np.float32) for w, _ in mats]

    def gemvs(i):
        for (w, _), v in zip(mats, vecs):
            np.dot(w, v)

    t.row("OpenBLAS sgemv over the same weights (floor)", clf=per_frame_us(gemvs, n), note="limit")


def gui_bench() -> int:
    """`python -m kwsgui.bench` in a subprocess: core never imports Qt."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "kwsgui.bench"], cwd=root).returncode


def main(args) -> int:
    from core import models

    if args.gui:
        return gui_bench()
    global REPEAT
    REPEAT = max(1, args.repeat)
    print(
        f"machine: {platform.processor() or platform.machine()}, {_cpu_name()}; one thread; "
        f"{args.frames} frames per measurement, best of {args.repeat}"
    )
    sets = []
    wanted = {s.strip() for s in args.models.split(",") if s.strip()}
    if "ell" in wanted:
        sets.append(
            (
                "ELL recipe: 80 mel (512 window, 512 hop) + 2 x GRU 128 + dense 31, random weights (seed 0)",
                *ell_recipe(),
            )
        )
    if "devkit" in wanted:
        if (DEVKIT / "classifier.ell").exists():
            sets.append(
                (
                    "ELL DevKit model (../shared/data): 80 mel + VAD + 2 x GRU 100 (hard sigmoid) + dense 31",
                    models.load_model(DEVKIT / "featurizer.ell"),
                    models.load_model(DEVKIT / "classifier.ell"),
                )
            )
        else:
            print(f"(DevKit model not found at {DEVKIT}: skipped)")
    if args.featurizer or args.classifier:
        if not (args.featurizer and args.classifier):
            raise SystemExit("kws bench: --featurizer and --classifier go together")
        sets.append(
            (
                f"{args.featurizer} + {args.classifier}",
                models.load_model(args.featurizer),
                models.load_model(args.classifier),
            )
        )
    for title, f, c in sets:
        bench_model(title, f, c, args.frames, args.threads, not args.no_peers)
    if not args.no_resample:
        from core.audio.resample_bench import bench_resample

        bench_resample()
    if args.data or args.train:
        from core.data.bench import bench_dataset
        from core.quiet import onnx_export_warnings
        from core.train.bench import bench_training

        if args.data:
            bench_dataset()
        if args.train:
            with onnx_export_warnings():  # each trained model is exported to ONNX
                bench_training(args.train_data, args.train_epochs)
    return 0


def _rate(featurizer) -> int:
    meta = featurizer.metadata
    return int(meta.get("sample_rate") or (meta.get("featurizer") or {}).get("sample_rate") or 16000)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
