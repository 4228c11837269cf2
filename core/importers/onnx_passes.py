"""Clean-up passes over an imported graph: fold batch-norm affines and bias adds into the weights
of their dense / conv / RNN neighbours, drop no-op reshapes, prune dead nodes.

Every fold is exact algebra on float64 copies of the weights:
- affine after dense or conv (y = s * (W x + b) + c): W' = s W, b' = s b + c;
- affine before dense or an RNN's input (W (s x + c) + b): W' = W s, b' = b + W c;
- constant add after dense or conv: b' = b + c.
"""

from __future__ import annotations

import numpy as np

from core.graph.ir import Graph, Node
from core.graph.shapes import infer_shapes

_PRODUCERS = ("dense", "dense_nd", "conv")


class _Index:
    """One sweep's view of a graph: nodes by id, each node's consumers, and the per-frame shapes
    (a rewrite never changes the shape of a node that stays). Removing a node re-points its users
    at once, so every input always names a live node; each lookup is O(1) and a sweep is linear."""

    def __init__(self, graph: Graph):
        self.by_id = {n.id: n for n in graph.nodes}
        self.users: dict[str, dict[str, Node]] = {}
        for n in graph.nodes:
            for i in n.inputs:
                self.users.setdefault(i, {})[n.id] = n
        self.shapes = infer_shapes(graph)
        self.removed: set[str] = set()

    def consumers(self, node_id: str) -> list[Node]:
        return list(self.users.get(node_id, {}).values())

    def rewire(self, node: Node, inputs: list[str]) -> None:
        for i in node.inputs:
            self.users.get(i, {}).pop(node.id, None)
        node.inputs = list(inputs)
        for i in node.inputs:
            self.users.setdefault(i, {})[node.id] = node

    def remove(self, node: Node, replacement: str) -> None:
        """Drop `node`; its users read `replacement` instead."""
        for u in self.consumers(node.id):
            self.rewire(u, [replacement if i == node.id else i for i in u.inputs])
        self.rewire(node, [])
        self.users.pop(node.id, None)
        self.removed.add(node.id)


def _sweep_end(graph: Graph, idx: _Index) -> None:
    if idx.removed:
        graph.nodes = [n for n in graph.nodes if n.id not in idx.removed]


def _per_channel(arr: np.ndarray, op: str, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """`arr` (broadcast against a frame of out_shape) as one value per output channel, or None when
    it varies otherwise. Channels: the first axis of a conv frame, the last of a dense one."""
    full = np.broadcast_to(np.asarray(arr, np.float64), out_shape)
    rows = full.reshape(out_shape[0], -1) if op == "conv" else full.reshape(-1, out_shape[-1]).T
    if not np.all(rows == rows[:, :1]):
        return None
    return rows[:, 0].copy()


def _fold_after(graph: Graph, prod: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    w = prod.params["weight"].astype(np.float64)
    bias = prod.params.get("bias", np.zeros(w.shape[0])).astype(np.float64)
    w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    prod.params["weight"] = w.astype(np.float32)
    prod.params["bias"] = (bias * scale + shift).astype(np.float32)


def fold_into_producers(graph: Graph) -> bool:
    """affine / constant add right after a dense or conv node that feeds nothing else (one sweep)."""
    idx, changed = _Index(graph), False
    for n in list(graph.nodes):
        if n.id in idx.removed:
            continue
        if n.op == "affine":
            src, scale, shift = n.inputs[0], n.params["scale"], n.params["shift"]
        elif n.op == "binary" and n.attrs.get("fn") == "add":
            consts = [i for i in n.inputs if idx.by_id[i].op == "constant"]
            if len(consts) != 1 or len(set(n.inputs)) != 2:
                continue
            src = next(i for i in n.inputs if i not in consts)
            scale, shift = np.ones(1), idx.by_id[consts[0]].params["value"]
        else:
            continue
        prod = idx.by_id[src]
        if prod.op not in _PRODUCERS or len(idx.users[src]) != 1 or idx.shapes[n.id] != idx.shapes[src]:
            continue
        s = _per_channel(scale, prod.op, idx.shapes[src])
        c = _per_channel(shift, prod.op, idx.shapes[src])
        if s is None or c is None:
            continue
        _fold_after(graph, prod, s, c)
        idx.remove(n, src)
        changed = True
    _sweep_end(graph, idx)
    return changed


def fold_into_consumers(graph: Graph) -> bool:
    """affine on a vector frame whose only consumer is a dense or an RNN (as its input); one sweep."""
    idx, changed = _Index(graph), False
    for n in list(graph.nodes):
        if n.id in idx.removed or n.op != "affine" or len(idx.shapes[n.id]) != 1:
            continue
        users = idx.consumers(n.id)
        if len(users) != 1 or users[0].inputs[0] != n.id or users[0].inputs.count(n.id) != 1:
            continue
        user = users[0]
        size = idx.shapes[n.id][0]
        scale = np.broadcast_to(n.params["scale"], (size,)).astype(np.float64)
        shift = np.broadcast_to(n.params["shift"], (size,)).astype(np.float64)
        if user.op == "dense":
            wkey, bkey = "weight", "bias"
        elif user.op in ("gru", "lstm"):
            wkey, bkey = "w_ih", "b_ih"
        else:
            continue
        w = user.params[wkey].astype(np.float64)
        bias = user.params.get(bkey, np.zeros(w.shape[0])).astype(np.float64)
        user.params[bkey] = (bias + w @ shift).astype(np.float32)
        user.params[wkey] = (w * scale[None, :]).astype(np.float32)
        idx.remove(n, n.inputs[0])
        changed = True
    _sweep_end(graph, idx)
    return changed


def binary_to_affine(graph: Graph) -> bool:
    """x (+-*/) constant, with the constant no bigger than x's frame, becomes an affine node; two
    affines in a row become one (one sweep, in graph order, so a chain merges left to right)."""
    idx, changed = _Index(graph), False
    for n in list(graph.nodes):
        if n.id in idx.removed:
            continue
        if n.op == "binary" and n.attrs.get("fn") in ("add", "sub", "mul", "div") and len(set(n.inputs)) == 2:
            kinds = [idx.by_id[i].op == "constant" for i in n.inputs]
            if kinds.count(True) == 1:
                k = kinds.index(True)
                x, c = n.inputs[1 - k], idx.by_id[n.inputs[k]].params["value"].astype(np.float64)
                fn = n.attrs["fn"]
                if idx.shapes[x] == idx.shapes[n.id] and not (fn == "div" and (k == 0 or np.any(c == 0))):
                    one, zero = np.ones_like(c), np.zeros_like(c)
                    if fn == "add":
                        scale, shift = one, c
                    elif fn == "sub":
                        scale, shift = (one, -c) if k == 1 else (-one, c)
                    elif fn == "mul":
                        scale, shift = c, zero
                    else:
                        scale, shift = 1.0 / c, zero
                    n.op, n.attrs = "affine", {}
                    idx.rewire(n, [x])
                    n.params = {"scale": scale.astype(np.float32), "shift": shift.astype(np.float32)}
                    changed = True
        first = idx.by_id[n.inputs[0]] if n.op == "affine" else None
        if first is not None and first.op == "affine" and len(idx.users[first.id]) == 1:
            a1, b1 = first.params["scale"].astype(np.float64), first.params["shift"].astype(np.float64)
            a2, b2 = n.params["scale"].astype(np.float64), n.params["shift"].astype(np.float64)
            n.params = {"scale": (a2 * a1).astype(np.float32), "shift": (a2 * b1 + b2).astype(np.float32)}
            idx.rewire(n, list(first.inputs))
            changed = True
    _sweep_end(graph, idx)
    return changed


def drop_noop_reshapes(graph: Graph) -> bool:
    """Identities and reshapes to the shape they already have go; a reshape of a reshape reads
    the first one's input (one sweep)."""
    idx, changed = _Index(graph), False
    for n in list(graph.nodes):
        if n.op == "identity":
            idx.remove(n, n.inputs[0])
            changed = True
            continue
        if n.op != "reshape":
            continue
        src = idx.by_id[n.inputs[0]]
        if src.op == "reshape":
            idx.rewire(n, [src.inputs[0]])
            src, changed = idx.by_id[src.inputs[0]], True
        if idx.shapes[src.id] == idx.shapes[n.id]:
            idx.remove(n, src.id)
            changed = True
    _sweep_end(graph, idx)
    return changed


def simplify(graph: Graph) -> Graph:
    steps = (
        drop_noop_reshapes,
        binary_to_affine,
        fold_into_producers,
        fold_into_consumers,
        drop_noop_reshapes,
    )
    for step in steps:
        while step(graph):
            graph.prune()
    return graph.prune()
