"""Graph summary: nodes, shapes, parameters, multiply-adds per frame."""

from __future__ import annotations

import math

import numpy as np

from core.graph.ir import Graph, Node
from core.graph.shapes import infer_shapes


def node_macs(node: Node, in_shapes: list[tuple], out_shape: tuple) -> int:
    """Multiply-adds one frame costs in this node (approximate for the FFT)."""
    size_in = int(np.prod(in_shapes[0])) if in_shapes else 0
    size_out = int(np.prod(out_shape))
    op = node.op
    from core.graph.ops_nn import MACS

    if op in MACS:
        return MACS[op](node, in_shapes, out_shape)
    if op in ("dense", "dense_q8"):
        return int(node.params["weight"].size)
    if op in ("gru", "lstm", "gru_q8", "lstm_q8"):
        return int(node.params["w_ih"].size + node.params["w_hh"].size)
    if op == "filterbank":
        return int(np.count_nonzero(node.params["weights"]))
    if op == "fft_mag":
        n = int(node.attrs["n_fft"])
        return 2 * n * int(math.log2(n)) + size_out
    if op == "dct":
        return size_in * size_out
    if op in ("window", "scale", "binary", "unary", "log", "softmax", "log_softmax", "vad", "iir"):
        return size_out if op != "vad" else size_in
    return 0


def stats(graph: Graph) -> dict:
    shapes = infer_shapes(graph)
    rows = []
    for n in graph.nodes:
        ins = [shapes[i] for i in n.inputs]
        rows.append({
            "id": n.id, "op": n.op, "shape": shapes[n.id],
            "params": int(sum(p.size for p in n.params.values())) if n.op != "constant" else 0,
            "macs": node_macs(n, ins, shapes[n.id]),
        })
    return {
        "rows": rows,
        "params": int(sum(p.size for n in graph.nodes for p in n.params.values())),
        "weight_bytes": int(sum(p.nbytes for n in graph.nodes for p in n.params.values())),
        "macs": sum(r["macs"] for r in rows),
        "input_size": graph.input_size,
        "output_size": int(np.prod(shapes[graph.output_node.id])),
    }


def summary_text(graph: Graph) -> str:
    s = stats(graph)
    kind = graph.metadata.get("kind", "model")
    lines = [f"{kind}: input {s['input_size']} -> output {s['output_size']} per frame"]
    lines.append(f"  {'node':<14} {'op':<13} {'shape':<10} {'params':>9} {'MACs':>9}")
    for r in s["rows"]:
        shape = "x".join(str(d) for d in r["shape"])
        lines.append(f"  {r['id'][:14]:<14} {r['op']:<13} {shape:<10} {r['params']:>9} {r['macs']:>9}")
    lines.append(f"  total: {s['params']} parameters ({s['weight_bytes'] / 1024:.1f} KiB), "
                 f"{s['macs']} multiply-adds per frame")
    if graph.categories:
        lines.append(f"  categories ({len(graph.categories)}): {', '.join(graph.categories[:8])}"
                     + (" ..." if len(graph.categories) > 8 else ""))
    return "\n".join(lines)
