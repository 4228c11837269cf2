"""The Piper child process (`python -m core.data.speech.piper_worker MODEL.onnx`): Piper is GPL and
links espeak-ng, so it never loads into the calling process; this worker loads the voice once and
answers requests on its pipes.

Protocol (binary stdout; anything a library prints goes to stderr instead):
- on start one JSON line: {"ready": true, "sample_rate": 22050} or {"ready": false, "error": ...};
- per request (one JSON line on stdin: text, length_scale, noise_scale, noise_w, seed) one JSON line
  {"ok": true, "samples": N} followed by N little-endian float32 samples, or {"ok": false, "error"}.

Reproducible noise: a VITS voice draws its noise with ONNX `RandomNormalLike`, which onnxruntime
seeds once per session, so a take would depend on every take before it in that process. The
worker replaces each such node by a slice of a graph input that it fills from
numpy.random.default_rng(seed) per request: the same seed gives the same audio in any process.
"""

from __future__ import annotations

import json
import os
import sys

NOISE_FLOATS = 192 * 2048  # per noise input: the prior's 192 channels x ~24 s of frames at hop 256, 22.05 kHz


def seeded_model(path: str):
    """The voice's ONNX graph with every RandomNormalLike replaced by input `kws_noise_<k>` (flat floats):
    Reshape(Slice(noise, [0], [Size(x)]), Shape(x))."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(path)
    g = m.graph
    nodes, k = [], 0
    for node in g.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("mean", 0.0) != 0.0 or attrs.get("scale", 1.0) != 1.0 or attrs.get("dtype", 1) != 1:
            raise ValueError(f"{path}: RandomNormalLike with {attrs} (expected a standard normal float)")
        x, y, p = node.input[0], node.output[0], f"kws_noise_{k}"
        g.input.append(helper.make_tensor_value_info(p, TensorProto.FLOAT, [None]))
        nodes += [helper.make_node("Size", [x], [f"{p}_n"]),
                  helper.make_node("Unsqueeze", [f"{p}_n", "kws_axis0"], [f"{p}_end"]),
                  helper.make_node("Slice", [p, "kws_axis0", f"{p}_end"], [f"{p}_flat"]),
                  helper.make_node("Shape", [x], [f"{p}_shape"]),
                  helper.make_node("Reshape", [f"{p}_flat", f"{p}_shape"], [y])]
        k += 1
    g.initializer.append(numpy_helper.from_array(np.zeros(1, np.int64), "kws_axis0"))
    del g.node[:]
    g.node.extend(nodes)
    return m.SerializeToString(), k


class SeededSession:
    """Stands in for piper's onnxruntime session: adds the noise inputs for the current seed."""

    def __init__(self, session, n_noise: int):
        self.session, self.n_noise, self.seed = session, n_noise, 0

    def run(self, outputs, feeds):
        import numpy as np

        rng = np.random.default_rng(self.seed)
        noise = {f"kws_noise_{k}": rng.standard_normal(NOISE_FLOATS, dtype=np.float32) for k in range(self.n_noise)}
        return self.session.run(outputs, {**feeds, **noise})

    def __getattr__(self, name):
        return getattr(self.session, name)


def main(argv: list[str]) -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the protocol

    def reply(doc: dict, payload: bytes = b"") -> None:
        out.write(json.dumps(doc).encode() + b"\n" + payload)
        out.flush()

    try:
        import numpy as np
        import onnxruntime as ort
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        model = argv[0]
        with open(f"{model}.json", encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        data, n_noise = seeded_model(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one worker per synthesis thread
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        seeded = SeededSession(session, n_noise)
        voice = PiperVoice(session=seeded, config=config)
    except Exception as e:  # report, do not die silently: the parent shows this
        reply({"ready": False, "error": f"{type(e).__name__}: {e}"})
        return 1
    reply({"ready": True, "sample_rate": config.sample_rate})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            seeded.seed = int(req["seed"])
            cfg = SynthesisConfig(length_scale=float(req["length_scale"]), noise_scale=float(req["noise_scale"]),
                                  noise_w_scale=float(req["noise_w"]))
            chunks = [c.audio_float_array for c in voice.synthesize(str(req["text"]), cfg)]
            audio = np.concatenate(chunks).astype("<f4") if chunks else np.zeros(0, "<f4")
        except Exception as e:
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"})
            continue
        reply({"ok": True, "samples": int(audio.size)}, audio.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
