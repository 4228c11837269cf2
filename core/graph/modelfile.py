"""The model file: one zip holding model.json (graph + metadata) and .npy arrays. No pickle.

Loading never executes code or trusts a size: the zip, model.json and every .npy are checked by
core.graph.validate and the graph by Graph.validate, so a malformed, hostile or absurd file gives
a `ModelFormatError` naming the file and the field before anything runs.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelFormatError
from core.fsutil import atomic_path, read_bytes_bounded
from core.graph.ir import Graph, Node
from core.graph.validate import MAX_FILE_BYTES, MAX_JSON_BYTES, Archive, check_document, parse_json, read_npy

FORMAT = "kwsgui.model"
VERSION = 1
EXTENSION = ".kwm"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def to_bytes(graph: Graph) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for n in graph.nodes:
        refs = {}
        for k, a in n.params.items():
            name = f"arrays/{len(arrays)}.npy"
            arrays[name] = np.ascontiguousarray(a)
            refs[k] = name
        nodes.append({"id": n.id, "op": n.op, "inputs": list(n.inputs), "attrs": _jsonable(n.attrs), "params": refs})
    doc = {"format": FORMAT, "version": VERSION, "metadata": _jsonable(graph.metadata), "nodes": nodes}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(_entry("model.json"), json.dumps(doc, indent=1))
        for name, a in arrays.items():
            b = io.BytesIO()
            np.lib.format.write_array(b, a, allow_pickle=False)
            z.writestr(_entry(name), b.getvalue())
    return buf.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed date: the same model is the same bytes whenever it is saved."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def save(graph: Graph, path: str | os.PathLike) -> Path:
    graph.validate()
    data = to_bytes(graph)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot write model: {e.strerror or e}") from None
    return Path(path)


def from_bytes(data: bytes, name: str = "<model>") -> Graph:
    """A graph from .kwm bytes, every layer checked (core.graph.validate, then Graph.validate)."""
    archive = Archive(data, name)
    if "model.json" not in archive:
        raise ModelFormatError(f"{name}: not a kwsgui model file (no model.json inside)")
    doc = parse_json(archive.read("model.json", MAX_JSON_BYTES), f"{name}: model.json")
    node_docs, metadata = check_document(doc, name, FORMAT, VERSION, archive)
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for nd in node_docs:
        params = {}
        for k, ref in nd["params"].items():
            if ref not in arrays:
                arrays[ref] = read_npy(archive.read(ref), f"{name}: node {nd['id']!r} parameter {k!r} ({ref})")
            params[k] = arrays[ref]
        nodes.append(Node(nd["id"], nd["op"], list(nd["inputs"]), dict(nd["attrs"]), params))
    graph = Graph(nodes, dict(metadata))
    try:
        graph.validate()
    except ModelFormatError as e:
        raise ModelFormatError(f"{name}: {e}") from None
    return graph


def load(path: str | os.PathLike) -> Graph:
    return from_bytes(read_bytes_bounded(path, "model file", error=ModelFormatError, max_bytes=MAX_FILE_BYTES),
                      str(path))
