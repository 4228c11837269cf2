"""Checks on an untrusted .kwm before anything is built from it: the zip, model.json, each .npy.

Layers, in the order core.graph.modelfile.from_bytes runs them:
1. `Archive`: the zip's members, with caps on their number, each member's and the total
   decompressed size and the compression ratio; encrypted members, compression methods other
   than stored/deflate and corrupt deflate streams are refused.
2. `parse_json` / `check_document`: model.json is UTF-8 JSON no deeper than MAX_JSON_DEPTH
   (checked before parsing, so no RecursionError), without NaN/Infinity, and of the right shape:
   a dict with format/version/metadata/nodes, each node a dict with string id/op, a list of
   string inputs, dict attrs and dict params naming archive members; metadata keys that the
   pipeline reads (categories, sample_rate, hop_length, featurizer) have sane types and values.
3. `read_npy`: each array's header is parsed without numpy's tokenizer, its dtype must be
   little-endian float32 or int8 (no object, complex, string or wider integer arrays; which
   parameters may be int8 each op declares, Graph.validate checks it), its element count is
   checked against the cap and the data length before anything is allocated.
The graph-level checks (node count, dtypes and finite values of every parameter, each op's
declared attributes, shapes and state sizes) live in core.graph.ir.Graph.validate and each op's
definition, so models from every importer get them too.

Every failure is a ModelFormatError whose message names the file and the field.
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from core.errors import ModelFormatError
from core.fsutil import MiB, human_size
from core.graph.ir import MAX_NODES

MAX_FILE_BYTES = 256 * MiB  # the .kwm itself
MAX_MEMBERS = 4 * MAX_NODES + 16  # model.json plus a few arrays per node
MAX_MEMBER_BYTES = 256 * MiB  # one member, decompressed
MAX_TOTAL_BYTES = 512 * MiB  # all members, decompressed
MAX_RATIO = 100  # decompressed / compressed, for members over RATIO_FROM bytes (float weights: ~1.1)
RATIO_FROM = 1 * MiB
MAX_JSON_BYTES = 32 * MiB  # ours are a few KiB; a 20,000-node import is a few MiB
MAX_JSON_DEPTH = 64  # our model.json nests 4 deep; attributes (pads, slices) add 2
MAX_NPY_HEADER = 64 * 1024
MAX_ARRAY_ELEMENTS = MAX_MEMBER_BYTES // 4
MAX_ARRAY_DIMS = 8
MAX_CATEGORIES = 100_000
MAX_SAMPLE_RATE = 384_000  # the highest rate audio interfaces offer


# ------------------------------------------------------------------ zip
class Archive:
    """The members of a .kwm zip, read with size caps; `read(member)` gives its bytes."""

    def __init__(self, data: bytes, name: str):
        self.name = name
        if len(data) > MAX_FILE_BYTES:
            raise ModelFormatError(f"{name}: model file is {human_size(len(data))}, more than "
                                   f"{human_size(MAX_FILE_BYTES)}")
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
                OverflowError, IndexError) as e:
            raise ModelFormatError(f"{name}: not a kwsgui model file (not a zip archive, or truncated: {e})") from None
        if len(infos) > MAX_MEMBERS:
            raise ModelFormatError(f"{name}: the archive has {len(infos)} members, more than {MAX_MEMBERS}")
        self.members: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            m = info.filename
            if m in self.members:
                raise ModelFormatError(f"{name}: archive member {m} appears twice")
            if info.flag_bits & 0x1:
                raise ModelFormatError(f"{name}: archive member {m} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ModelFormatError(f"{name}: archive member {m} uses an unsupported compression method "
                                       f"({info.compress_type}; only stored and deflate are read)")
            if info.file_size > MAX_MEMBER_BYTES:
                raise ModelFormatError(f"{name}: archive member {m} inflates to {human_size(info.file_size)}, "
                                       f"more than {human_size(MAX_MEMBER_BYTES)}")
            if info.file_size > RATIO_FROM and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                ratio = info.file_size // max(info.compress_size, 1)
                raise ModelFormatError(f"{name}: archive member {m} inflates {ratio}-fold, more than {MAX_RATIO} "
                                       "(a zip bomb?)")
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise ModelFormatError(f"{name}: the archive inflates to more than {human_size(MAX_TOTAL_BYTES)}")
            self.members[m] = info

    def __contains__(self, member: str) -> bool:
        return member in self.members

    def read(self, member: str, max_bytes: int = MAX_MEMBER_BYTES) -> bytes:
        info = self.members[member]
        if info.file_size > max_bytes:
            raise ModelFormatError(f"{self.name}: {member} is {human_size(info.file_size)}, more than "
                                   f"{human_size(max_bytes)}")
        try:
            with self._zip.open(info) as f:
                data = f.read(info.file_size + 1)  # zipfile stops at the declared size and checks the CRC
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, struct.error, NotImplementedError,
                RuntimeError, OverflowError) as e:
            raise ModelFormatError(f"{self.name}: {member} is corrupt ({e})") from None
        if len(data) != info.file_size:
            raise ModelFormatError(f"{self.name}: {member} is truncated")
        return data


# ------------------------------------------------------------------ model.json
# a string, possessively, to its closing quote or the end of the text: one linear pass, no retries
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def json_depth(text: bytes) -> int:
    """The deepest bracket nesting of JSON text (strings skipped), without recursing."""
    b = np.frombuffer(_STRING.sub(b'""', text), np.uint8)
    step = np.isin(b, _OPEN).astype(np.int64) - np.isin(b, _CLOSE).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def _refuse_constant(s: str) -> Any:
    raise ValueError(f"{s} is not a number JSON allows")


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"number {s[:20]} is out of range")
    return v


def parse_json(data: bytes, where: str) -> Any:
    """JSON text -> value; too deep, NaN/Infinity, non-UTF-8 or malformed text is a ModelFormatError."""
    if len(data) > MAX_JSON_BYTES:
        raise ModelFormatError(f"{where} is {human_size(len(data))}, more than {human_size(MAX_JSON_BYTES)}")
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise ModelFormatError(f"{where} nests {depth} levels deep, more than {MAX_JSON_DEPTH}")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ModelFormatError(f"{where} is unreadable (not valid JSON: {e})") from None


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


def _expect(v: Any, kind: type | tuple, where: str, what: str) -> Any:
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise ModelFormatError(f"{where} must be {what}, not {_type_name(v)}")
    return v


def _number(v: Any, where: str, lo: float, hi: float, integer: bool = False) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi or (integer and v != int(v)):
        kind = "an integer" if integer else "a number"
        raise ModelFormatError(f"{where} must be {kind} in [{lo:g}, {hi:g}], got {v!r}")


def _check_audio_meta(meta: dict, where: str) -> None:
    if meta.get("sample_rate") is not None:
        _number(meta["sample_rate"], f"{where} sample_rate", 1000, MAX_SAMPLE_RATE)
    if meta.get("hop_length") is not None:
        _number(meta["hop_length"], f"{where} hop_length", 1, MAX_SAMPLE_RATE, integer=True)


def check_metadata(meta: Any, where: str) -> dict:
    """The metadata keys the pipeline reads have sane types; others are free-form JSON."""
    _expect(meta, dict, where, "an object")
    if meta.get("kind") is not None:
        _expect(meta["kind"], str, f"{where} kind", "a string")
    cats = meta.get("categories")
    if cats is not None:
        _expect(cats, list, f"{where} categories", "a list of strings")
        if len(cats) > MAX_CATEGORIES:
            raise ModelFormatError(f"{where} categories has {len(cats)} entries, more than {MAX_CATEGORIES}")
        for i, c in enumerate(cats):
            _expect(c, str, f"{where} categories[{i}]", "a string")
    _check_audio_meta(meta, where)
    if meta.get("featurizer") is not None:
        _check_audio_meta(_expect(meta["featurizer"], dict, f"{where} featurizer", "an object"), f"{where} featurizer")
    return meta


def check_document(doc: Any, name: str, fmt: str, version: int, archive: Archive) -> tuple[list[dict], dict]:
    """model.json -> (node dicts with every field present and typed, metadata)."""
    where = f"{name}: model.json"
    if not isinstance(doc, dict):
        raise ModelFormatError(f"{where} must be an object, not {_type_name(doc)}")
    if doc.get("format") != fmt:
        raise ModelFormatError(f"{name}: not a kwsgui model file (format is {str(doc.get('format'))[:40]!r})")
    v = doc.get("version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ModelFormatError(f"{where} version must be a positive integer, got {str(v)[:40]!r}")
    if v > version:
        raise ModelFormatError(f"{name}: model format version {v} is newer than this kwsgui ({version})")
    meta = check_metadata(doc.get("metadata", {}), f"{where} metadata")
    nodes = _expect(doc.get("nodes"), list, f"{where} nodes", "a list")
    if not nodes:
        raise ModelFormatError(f"{where} has no nodes")
    if len(nodes) > MAX_NODES:
        raise ModelFormatError(f"{where} has {len(nodes)} nodes, more than {MAX_NODES}")
    out = []
    for i, nd in enumerate(nodes):
        at = f"{where} node #{i}"
        _expect(nd, dict, at, "an object")
        nid = _expect(nd.get("id"), str, f"{at} id", "a string")
        at = f"{where} node {nid[:80]!r}"
        op = _expect(nd.get("op"), str, f"{at} op", "a string")
        inputs = _expect(nd.get("inputs", []), list, f"{at} inputs", "a list")
        for k, x in enumerate(inputs):
            _expect(x, str, f"{at} inputs[{k}]", "a string")
        attrs = _expect(nd.get("attrs", {}), dict, f"{at} attrs", "an object")
        params = _expect(nd.get("params", {}), dict, f"{at} params", "an object")
        for k, ref in params.items():
            _expect(ref, str, f"{at} parameter {k!r}", "the name of an array in the archive")
            if ref not in archive:
                raise ModelFormatError(f"{at} parameter {k!r}: array {ref[:80]} is missing")
        out.append({"id": nid, "op": op, "inputs": inputs, "attrs": attrs, "params": params})
    return out, meta


# ------------------------------------------------------------------ .npy
_NPY_MAGIC = b"\x93NUMPY"
# float32 for almost every array; int8 for the quantized ops' weights (core.graph.ops_q8). Which
# parameter may be int8 is the op's declaration, checked by Graph.validate: an int8 array anywhere
# else is refused there.
_DTYPES = {"<f4": np.dtype("<f4"), "float32": np.dtype("<f4"), "|i1": np.dtype("i1"), "<i1": np.dtype("i1")}


def read_npy(data: bytes, where: str) -> np.ndarray:
    """An .npy file's array: float32 or int8 only, header parsed as a literal, size checked before allocating."""
    if len(data) < 10 or data[:6] != _NPY_MAGIC:
        raise ModelFormatError(f"{where}: malformed .npy array (bad magic)")
    major = data[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", data[8:10]), 10
    elif major in (2, 3):
        if len(data) < 12:
            raise ModelFormatError(f"{where}: malformed .npy array (truncated header)")
        (hlen,), start = struct.unpack("<I", data[8:12]), 12
    else:
        raise ModelFormatError(f"{where}: malformed .npy array (unsupported version {major}.{data[7]})")
    if hlen > MAX_NPY_HEADER or start + hlen > len(data):
        raise ModelFormatError(f"{where}: malformed .npy array (header length {hlen} is out of range)")
    try:
        text = data[start : start + hlen].decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ModelFormatError(f"{where}: malformed .npy header (not a literal: {type(e).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ModelFormatError(f"{where}: malformed .npy header (must hold descr, fortran_order and shape)")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str) or descr not in _DTYPES:
        raise ModelFormatError(f"{where}: array dtype {str(descr)[:40]!r} is not little-endian float32 or int8 "
                               "(model arrays are float32, quantized weights int8; object, complex, string and "
                               "wider integer arrays are refused)")
    dtype = _DTYPES[descr]
    if not isinstance(fortran, bool):
        raise ModelFormatError(f"{where}: .npy fortran_order must be True or False")
    if (not isinstance(shape, tuple) or len(shape) > MAX_ARRAY_DIMS
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape)):
        raise ModelFormatError(f"{where}: .npy shape {str(shape)[:60]} is not a tuple of at most "
                               f"{MAX_ARRAY_DIMS} non-negative integers")
    count = math.prod(shape)
    if count > MAX_ARRAY_ELEMENTS:
        raise ModelFormatError(f"{where}: array of shape {shape} has {count} elements, more than {MAX_ARRAY_ELEMENTS}")
    body = memoryview(data)[start + hlen :]
    if len(body) != dtype.itemsize * count:
        raise ModelFormatError(f"{where}: array of shape {shape} needs {dtype.itemsize * count} bytes of data, "
                               f"has {len(body)}")
    a = np.frombuffer(body, dtype, count)
    return np.array(a.reshape(shape, order="F" if fortran else "C"), dtype=dtype.newbyteorder("="), order="C")
