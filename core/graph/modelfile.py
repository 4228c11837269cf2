"""The model file: one zip holding model.json (graph + metadata) and .npy arrays. No pickle.

Loading never executes code: arrays are read with allow_pickle=False and the JSON is checked
node by node, so a malformed or hostile file gives a `ModelFormatError` naming the problem.
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
from core.fsutil import atomic_path
from core.graph.ir import Graph, Node

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
        z.writestr("model.json", json.dumps(doc, indent=1))
        for name, a in arrays.items():
            b = io.BytesIO()
            np.lib.format.write_array(b, a, allow_pickle=False)
            z.writestr(name, b.getvalue())
    return buf.getvalue()


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
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = set(z.namelist())
    except zipfile.BadZipFile:
        raise ModelFormatError(f"{name}: not a kwsgui model file (not a zip archive, or truncated)") from None
    if "model.json" not in names:
        raise ModelFormatError(f"{name}: not a kwsgui model file (no model.json inside)")
    try:
        doc = json.loads(z.read("model.json"))
    except (ValueError, zipfile.BadZipFile, OSError) as e:
        raise ModelFormatError(f"{name}: model.json is unreadable: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFormatError(f"{name}: not a kwsgui model file (format is {doc.get('format')!r})")
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ModelFormatError(f"{name}: model format version {version!r} is newer than this kwsgui ({VERSION})")
    nodes = []
    for i, nd in enumerate(doc.get("nodes") or []):
        try:
            params = {}
            for k, ref in nd.get("params", {}).items():
                if ref not in names:
                    raise ModelFormatError(f"{name}: node {nd['id']!r} parameter {k!r}: array {ref} is missing")
                params[k] = np.lib.format.read_array(io.BytesIO(z.read(ref)), allow_pickle=False)
            nodes.append(Node(str(nd["id"]), str(nd["op"]), [str(x) for x in nd.get("inputs", [])],
                              dict(nd.get("attrs", {})), params))
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError, zipfile.BadZipFile, OSError) as e:
            raise ModelFormatError(f"{name}: node #{i} is malformed: {e}") from None
    graph = Graph(nodes, dict(doc.get("metadata") or {}))
    try:
        graph.validate()
    except ModelFormatError as e:
        raise ModelFormatError(f"{name}: {e}") from None
    return graph


def load(path: str | os.PathLike) -> Graph:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{p}: cannot read model: {e.strerror or e}") from None
    return from_bytes(data, str(p))
