"""Hostile or broken model files (issue 10 part 2): each is a ModelFormatError naming the file and
the field, at load, never a traceback, hang or memory blow-up; the CLI prints one error line."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.data.lists import read_list
from core.errors import DataError, KwsError, ModelFormatError
from core.evaluate.passrate import read_list as read_eval_list
from core.fsutil import check_regular_file, read_bytes_bounded
from core.graph import modelfile
from core.graph.ir import MAX_NODES, Graph, Node
from core.models import load_categories, load_model

ROOT = Path(__file__).resolve().parents[2]


def _rng():
    return np.random.default_rng(0)


def _graph() -> Graph:
    """input(4) -> dense(3) -> softmax -> output, plus a frame_buffer/fft featurizer-like branch is not needed."""
    r = _rng()
    return Graph([
        Node("in", "input", [], {"size": 4}),
        Node("fc", "dense", ["in"], {}, {"weight": r.normal(size=(3, 4)).astype(np.float32),
                                         "bias": np.zeros(3, np.float32)}),
        Node("sm", "softmax", ["fc"]),
        Node("out", "output", ["sm"]),
    ], {"kind": "classifier", "categories": ["a", "b", "c"]})


def _featurizer() -> Graph:
    return Graph([
        Node("in", "input", [], {"size": 160}),
        Node("fb", "frame_buffer", ["in"], {"window_size": 400}),
        Node("win", "window", ["fb"], {"kind": "hann"}),
        Node("fft", "fft_mag", ["win"], {"n_fft": 512}),
        Node("mel", "filterbank", ["fft"], {"kind": "mel"}, {"weights": np.ones((40, 257), np.float32)}),
        Node("log", "log", ["mel"], {"delta": 1.0}),
        Node("out", "output", ["log"]),
    ], {"kind": "featurizer", "sample_rate": 16000, "hop_length": 160})


def _members(g: Graph) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(modelfile.to_bytes(g))) as z:
        return {n: z.read(n) for n in z.namelist()}


def _zip(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return b.getvalue()


def _doc(g: Graph | None = None) -> dict:
    return json.loads(_members(g or _graph())["model.json"])


def _with_doc(doc, g: Graph | None = None) -> bytes:
    m = _members(g or _graph())
    m["model.json"] = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return _zip(m)


def _edit(fn, g: Graph | None = None) -> bytes:
    doc = _doc(g)
    fn(doc)
    return _with_doc(doc, g)


def _node(doc, nid):
    return next(n for n in doc["nodes"] if n["id"] == nid)


def _set_attr(nid, key, value, g=None):
    return lambda: _edit(lambda d: _node(d, nid)["attrs"].__setitem__(key, value), g)


def _npy(header: str, body: bytes = b"", version: int = 1) -> bytes:
    h = header.encode("latin-1")
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + size + h + body


def _array_file(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array(b, a, allow_pickle=False)
    return b.getvalue()


def _replace_weight(data: bytes) -> bytes:
    """The model with arrays/0.npy (the dense weight) replaced by `data`."""
    m = _members(_graph())
    m["arrays/0.npy"] = data
    return _zip(m)


def _patch_headers(data: bytes, offset_local: int, offset_central: int, fmt: str, value) -> bytes:
    """Set one field in every local (PK\\3\\4) and central (PK\\1\\2) header."""
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        i = b.find(sig)
        while i >= 0:
            old = struct.unpack_from(fmt, b, i + off)[0]
            struct.pack_into(fmt, b, i + off, value(old))
            i = b.find(sig, i + 4)
    return bytes(b)


def _corrupt_deflate() -> bytes:
    """model.json's deflate stream overwritten with bytes that are no valid deflate block."""
    data = bytearray(_zip(_members(_graph())))
    i = data.find(b"PK\x03\x04")
    name_len, extra_len = struct.unpack_from("<HH", data, i + 26)
    start = i + 30 + name_len + extra_len
    data[start : start + 16] = b"\xff" * 16  # block type 3: reserved, zlib.error
    return bytes(data)


def _zip_bomb() -> bytes:
    """A ~64 KiB file whose array member inflates to 64 MiB of zeros (ratio ~1000)."""
    m = _members(_graph())
    m["arrays/0.npy"] = _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (16777216,), }", bytes(64 << 20))
    return _zip(m)


def _deep_json() -> bytes:
    text = json.dumps(_doc()).replace('"kind": "classifier"', '"kind": ' + "[" * 100_000 + "]" * 100_000)
    return _with_doc(text.encode())


def _many_nodes() -> bytes:
    doc = _doc()
    doc["nodes"] = [{"id": "in", "op": "input", "attrs": {"size": 4}}] + [
        {"id": f"n{i}", "op": "identity", "inputs": ["in" if i == 0 else f"n{i - 1}"]} for i in range(MAX_NODES)]
    return _with_doc(doc)


CASES = {
    # model.json of the wrong JSON type or shape
    "json is a list": (lambda: _with_doc([1, 2]), "model.json must be an object"),
    "json is a string": (lambda: _with_doc("kwsgui.model"), "model.json must be an object"),
    "json not utf-8": (lambda: _with_doc(b'{"a": "\xff"}'), "unreadable"),
    "nodes is a dict": (lambda: _edit(lambda d: d.__setitem__("nodes", {"a": 1})), "nodes must be a list"),
    "node is a string": (lambda: _edit(lambda d: d["nodes"].__setitem__(1, "fc")), r"node #1 must be an object"),
    "node is null": (lambda: _edit(lambda d: d["nodes"].__setitem__(1, None)), r"node #1 must be an object"),
    "node without id": (lambda: _edit(lambda d: d["nodes"][1].pop("id")), "id must be a string"),
    "id is a number": (lambda: _edit(lambda d: d["nodes"][1].__setitem__("id", 7)), "id must be a string"),
    "op is null": (lambda: _edit(lambda d: d["nodes"][1].__setitem__("op", None)), "'fc' op must be a string"),
    "inputs is a string": (lambda: _edit(lambda d: d["nodes"][1].__setitem__("inputs", "in")), "inputs must be"),
    "params is a list": (lambda: _edit(lambda d: d["nodes"][1].__setitem__("params", ["x"])), "params must be"),
    "attrs is a list": (lambda: _edit(lambda d: d["nodes"][1].__setitem__("attrs", [])), "attrs must be"),
    "metadata is a list": (lambda: _edit(lambda d: d.__setitem__("metadata", [])), "metadata must be an object"),
    "categories not strings": (lambda: _edit(lambda d: d["metadata"].__setitem__("categories", [1])),
                               r"categories\[0\] must be a string"),
    "sample_rate 1 Hz": (lambda: _edit(lambda d: d["metadata"].__setitem__("sample_rate", 1)), "sample_rate"),
    "version is a string": (lambda: _edit(lambda d: d.__setitem__("version", "1")), "version"),
    "NaN in json": (lambda: _with_doc(json.dumps(_doc()).replace('"categories"', '"x": NaN, "categories"').encode()),
                    "NaN"),
    "deep nesting": (_deep_json, "nests 100002 levels deep"),
    "too many nodes": (_many_nodes, f"more than {MAX_NODES}"),
    "input defined later": (lambda: _edit(lambda d: d["nodes"][1].__setitem__("inputs", ["sm"])),
                            "not defined before it"),
    "unknown op": (lambda: _edit(lambda d: d["nodes"][1].__setitem__("op", "warp")), "unknown op"),
    # the zip
    "corrupt deflate": (_corrupt_deflate, "model.json is corrupt"),
    "encrypted flag": (lambda: _patch_headers(_zip(_members(_graph())), 6, 8, "<H", lambda v: v | 1), "encrypted"),
    "unknown compression": (lambda: _patch_headers(_zip(_members(_graph())), 8, 10, "<H", lambda v: 99),
                            "unsupported compression"),
    "bzip2 compression": (lambda: _zip(_members(_graph()), zipfile.ZIP_BZIP2), "unsupported compression"),
    "declares 1 GiB": (lambda: _patch_headers(_zip(_members(_graph())), 22, 24, "<I", lambda v: 1 << 30),
                       "inflates to 1.0 GiB"),
    "zip bomb": (_zip_bomb, "inflates 1"),
    "not a zip": (lambda: b"\x00" * 100, "not a zip"),
    # the .npy arrays
    "npy tokenize error": (lambda: _replace_weight(_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), '''")),
                           "malformed .npy header"),
    "npy header a list": (lambda: _replace_weight(_npy("[1, 2]")), "malformed .npy header"),
    "npy 2^40 elements": (lambda: _replace_weight(_npy("{'descr': '<f4', 'fortran_order': False, "
                                                       "'shape': (1099511627776,), }")), "more than"),
    "npy 10^7 mel filters": (lambda: _replace_weight(_npy("{'descr': '<f4', 'fortran_order': False, "
                                                          "'shape': (10000000, 257), }")), "more than"),
    "npy short body": (lambda: _replace_weight(_array_file(np.zeros((3, 4), np.float32))[:-4]), "needs 48 bytes"),
    "object dtype": (lambda: _replace_weight(_npy("{'descr': '|O', 'fortran_order': False, 'shape': (12,), }",
                                                  bytes(96))), "not little-endian float32"),
    "complex weights": (lambda: _replace_weight(_array_file(np.zeros((3, 4), np.complex64))), "float32"),
    "string weights": (lambda: _replace_weight(_array_file(np.array(["ab"] * 12).reshape(3, 4))), "float32"),
    "int8 weights": (lambda: _replace_weight(_array_file(np.zeros((3, 4), np.int8))), "float32"),
    "float64 weights": (lambda: _replace_weight(_array_file(np.zeros((3, 4)))), "float32"),
    "NaN weights": (lambda: _replace_weight(_array_file(np.full((3, 4), np.nan, np.float32))), "NaN or infinite"),
    "inf weights": (lambda: _replace_weight(_array_file(np.full((3, 4), np.inf, np.float32))), "NaN or infinite"),
    "transposed weights": (lambda: _replace_weight(_array_file(np.zeros((4, 3), np.float32))),
                           r"'weight' has shape \(4, 3\), expected \(\*, 4\)"),
    "1-D weights": (lambda: _replace_weight(_array_file(np.zeros(12, np.float32))), "'weight' has shape"),
    # absurd but parseable attributes
    "input size 0": (_set_attr("in", "size", 0), r"'size' must be an integer in \[1,"),
    "input size -5": (_set_attr("in", "size", -5), "'size' must be an integer"),
    "input size string": (_set_attr("in", "size", "4"), "'size' must be an integer"),
    "input size 2.5": (_set_attr("in", "size", 2.5), "'size' must be an integer"),
    "input size true": (_set_attr("in", "size", True), "'size' must be an integer"),
    "window_size 1e12": (_set_attr("fb", "window_size", 1e12, _featurizer()), "'window_size' must be an integer"),
    "fft size 2^36": (_set_attr("fft", "n_fft", 2**36, _featurizer()), "'n_fft' must be an integer"),
    "window kind unknown": (_set_attr("win", "kind", "kaiser", _featurizer()), "'kind' must be one of"),
    "log delta string": (_set_attr("log", "delta", "1", _featurizer()), "'delta' must be a finite number"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_kwm_is_refused_at_load_naming_file_and_field(case, tmp_path):
    make, message = CASES[case]
    p = tmp_path / "bad.kwm"
    p.write_bytes(make())
    t0 = time.monotonic()
    with pytest.raises(ModelFormatError, match=message) as e:
        load_model(p)
    assert str(p) in str(e.value)
    assert time.monotonic() - t0 < 10, "refused, but slowly"


def test_the_cases_start_from_a_model_that_loads(tmp_path):
    for g in (_graph(), _featurizer()):
        p = tmp_path / "good.kwm"
        p.write_bytes(modelfile.to_bytes(g))
        assert [n.id for n in load_model(p).nodes] == [n.id for n in g.nodes]


def test_long_chains_load_without_recursion(tmp_path):
    doc = _doc()
    chain = [{"id": f"i{k}", "op": "identity", "inputs": ["in" if k == 0 else f"i{k - 1}"]} for k in range(5000)]
    doc["nodes"] = doc["nodes"][:1] + chain + [dict(n, inputs=["i4999"]) if n["id"] == "fc" else n
                                               for n in doc["nodes"][1:]]
    p = tmp_path / "long.kwm"
    p.write_bytes(_with_doc(doc))
    assert len(load_model(p).nodes) == 5004


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "pipe"
    os.mkfifo(p)
    return p


def _returns_quickly(fn, *args):
    """fn(*args) in a thread: it must finish (by raising) within 5 s; a blocked open never would."""
    out = {}

    def target():
        try:
            fn(*args)
            out["result"] = "returned"
        except KwsError as e:
            out["result"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    return out["result"]


@pytest.mark.parametrize("reader, error", [
    (load_model, ModelFormatError), (load_categories, DataError), (read_list, DataError),
    (read_eval_list, DataError), (modelfile.load, ModelFormatError),
])
def test_fifo_device_and_folder_are_refused_without_blocking(reader, error, fifo, tmp_path):
    for path, kind in ((fifo, "FIFO"), (Path("/dev/zero"), "device"), (tmp_path, "folder")):
        e = _returns_quickly(reader, path)
        assert isinstance(e, error) and kind in str(e) and str(path) in str(e), e


def test_size_caps_and_missing_files(tmp_path):
    p = tmp_path / "big.txt"
    p.write_bytes(b"x" * 2000)
    with pytest.raises(DataError, match="2.0 KiB, more than the 1000 bytes allowed"):
        check_regular_file(p, "list file", max_bytes=1000)
    with pytest.raises(ModelFormatError, match="more than the 1000 bytes"):
        read_bytes_bounded(p, "model file", error=ModelFormatError, max_bytes=1000)
    assert read_bytes_bounded(p, "x", max_bytes=2000) == b"x" * 2000
    with pytest.raises(ModelFormatError, match="no such model file"):
        load_model(tmp_path / "missing.kwm")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(DataError, match="not UTF-8"):
        load_categories(tmp_path / "bad.txt")


def _kws(*args):
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


FEATURIZER, CLASSIFIER = ROOT / "assets" / "featurizer.kwm", ROOT / "assets" / "classifier.kwm"


@pytest.mark.parametrize("case, command", [
    ("deep nesting", "import"), ("npy tokenize error", "import"), ("NaN weights", "run"), ("window_size 1e12", "run"),
])
def test_cli_prints_one_error_line(case, command, tmp_path):
    p = tmp_path / "bad.kwm"
    p.write_bytes(CASES[case][0]())
    if command == "import":
        args = ("import", p)
    else:
        models = ("--featurizer", p, "--classifier", CLASSIFIER) if "window" in case else (
            "--featurizer", FEATURIZER, "--classifier", p)
        args = ("run", *models, "--wav-file", ROOT / "assets" / "demo.wav")
    out = _kws(*args)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and str(p) in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_cli_refuses_a_fifo_model(fifo):
    out = _kws("import", fifo)
    assert out.returncode != 0 and "FIFO" in out.stderr and "Traceback" not in out.stderr


def test_a_dct_too_large_to_build_is_refused_at_load():
    """n_out and the input size are each in range, but their product would be the matrix the op
    builds when it runs (2**44 values): refused by validation, naming the node."""
    from core.errors import ModelFormatError
    from core.graph.ir import chain

    g = chain([("input", {"size": 1 << 21}, {}), ("dct", {"n_out": 1 << 21}, {}), ("output", {}, {})])
    with pytest.raises(ModelFormatError, match="dct"):
        g.validate()
