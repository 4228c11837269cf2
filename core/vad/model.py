"""A VAD inside a classifier graph (ELL's add_vad): find it, take it out, add or replace it.

One VAD node reads the classifier's graph input (the features as they arrive, before any
normalisation the model bakes in) and feeds the reset trigger of every GRU/LSTM. Its frame
duration is the featurizer's hop / sample rate, read from the model's metadata or from the
featurizer it runs behind, never guessed.
"""

from __future__ import annotations

import os

from core.errors import KwsError, ModelFormatError
from core.graph.ir import Graph, Node
from core.vad.params import VadParams

RECURRENT = ("gru", "lstm")


def vad_nodes(graph: Graph) -> list[Node]:
    return graph.by_op("vad")


def recurrent_nodes(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op in RECURRENT]


def vad_params_of(node: Node) -> VadParams:
    """The parameters a VAD node carries."""
    return VadParams.from_dict({k: v for k, v in node.attrs.items()
                                if k not in ("frame_duration", "sample_rate")})


def model_vad(graph: Graph) -> tuple[VadParams, float] | None:
    """(parameters, frame duration in s) of the graph's VAD, or None when it has none."""
    found = vad_nodes(graph)
    if not found:
        return None
    return vad_params_of(found[0]), float(found[0].attrs["frame_duration"])


def strip_vad(graph: Graph) -> Graph:
    """A copy without VAD nodes and without reset triggers (the plain continuous model)."""
    g = graph.copy()
    drop = {n.id for n in vad_nodes(g)}
    for n in recurrent_nodes(g):
        n.inputs = n.inputs[:1]
    for n in g.nodes:
        if any(i in drop for i in n.inputs):
            raise ModelFormatError(f"node {n.id!r} ({n.op}) reads the VAD output; only GRU/LSTM triggers can")
    g.nodes = [n for n in g.nodes if n.id not in drop]
    g.metadata.pop("vad", None)
    return g


def frame_timing(classifier: Graph, featurizer: Graph | None = None,
                 featurizer_path: str | os.PathLike | None = None) -> tuple[float, int]:
    """(frame duration in s, sample rate) for a VAD on this classifier: from the featurizer when
    given, else from the classifier's metadata (hop_length, sample_rate); otherwise a KwsError
    saying to pass the featurizer."""
    if featurizer is not None:
        from core.data.dataset import featurizer_info

        info = featurizer_info(featurizer, featurizer_path)
        n_in = classifier.input_size
        if int(info["n_features"]) != n_in:
            raise KwsError(f"{featurizer_path or 'featurizer'}: emits {info['n_features']} features but the "
                           f"classifier expects {n_in}")
        return int(info["hop_length"]) / int(info["sample_rate"]), int(info["sample_rate"])
    meta = classifier.metadata
    fcfg = meta.get("featurizer") if isinstance(meta.get("featurizer"), dict) else {}
    hop = meta.get("hop_length") or fcfg.get("hop_length")
    sr = meta.get("sample_rate") or fcfg.get("sample_rate")
    if hop and sr:
        return int(hop) / int(sr), int(sr)
    # not from a VAD already there: ELL's add_vad guessed its frame duration from a window size
    raise KwsError("the classifier does not state its featurizer's hop_length and sample_rate (an ELL or "
                   "ONNX import?): pass --featurizer F, the featurizer it runs behind")


def add_vad(classifier: Graph, params: VadParams, frame_duration_s: float, sample_rate: int) -> Graph:
    """A copy of `classifier` with one VAD on its input feeding the reset trigger of every
    GRU/LSTM; an existing VAD is replaced, not stacked. Raises KwsError if nothing is recurrent."""
    if not frame_duration_s > 0:
        raise ValueError(f"VAD frame_duration must be positive, got {frame_duration_s}")
    g = strip_vad(classifier)
    rnns = recurrent_nodes(g)
    if not rnns:
        raise KwsError("the classifier has no GRU or LSTM layer: a VAD reset would change nothing")
    src = g.input_node
    vid = "vad" if "vad" not in {n.id for n in g.nodes} else g.new_id("vad")
    attrs = params.to_dict() | {"frame_duration": float(frame_duration_s), "sample_rate": float(sample_rate)}
    node = Node(vid, "vad", [src.id], attrs)
    g.nodes.insert(g.nodes.index(src) + 1, node)
    for n in rnns:
        n.inputs = [n.inputs[0], vid]
    g.metadata["vad"] = attrs
    g.validate()
    return g
