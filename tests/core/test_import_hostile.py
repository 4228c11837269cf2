"""Hostile or broken ELL and ONNX files: each gives a typed KwsError naming the file and the field,
at import, never a raw Python error, a hang, a recursion error or a huge allocation."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.errors import KwsError, ModelFormatError, ModelImportError
from core.importers.ell import load_ell
from core.importers.limits import MAX_NODES
from core.importers.onnx import load_onnx


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) if the block runs longer than `seconds`."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def refused(load, path, error=KwsError, match: str | None = None, seconds: float = 20.0) -> str:
    """Load `path`, expecting `error` whose message names the file; returns the message."""
    with deadline(seconds), pytest.raises(error, match=match) as e:
        load(path)
    assert str(path) in str(e.value), str(e.value)
    return str(e.value)


# ---------------------------------------------------------------------- ELL
def _ell(nodes) -> dict:
    return {"_type": "Map", "model": {"nodes": nodes}}


def _inp(i="1", size=4) -> dict:
    return {"_type": "InputNode<float>", "id": i, "layout": {"size": [size]}}


def _port(src) -> dict:
    return {"_type": "InputPort<float>", "input": f"{src}.output"}


def _unary(i, src, op="abs") -> dict:
    return {"_type": "UnaryOperationNode<float>", "id": i, "input": _port(src), "operation": op}


def _out(i, src) -> dict:
    return {"_type": "OutputNode<float>", "id": i, "input": _port(src)}


@pytest.fixture(scope="module")
def featurizer_doc(shared_data) -> dict:
    return json.loads((shared_data / "ell_devkit_model" / "featurizer.ell").read_text())


@pytest.fixture(scope="module")
def classifier_doc(shared_data) -> dict:
    from core.importers.ell import _keep_duplicates

    text = (shared_data / "ell_devkit_model" / "classifier.ell").read_text()
    return json.loads(text, object_pairs_hook=_keep_duplicates)


def _write(tmp_path, doc, name="m.ell"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def _mutate(doc: dict, type_prefix: str, change) -> dict:
    """A copy of `doc` with `change(node)` applied to its nodes whose _type starts with the prefix."""
    d = copy.deepcopy(doc)
    hits = [n for n in d["model"]["nodes"] if n["_type"].startswith(type_prefix)]
    assert hits, type_prefix
    for n in hits:
        change(n)
    return d


@pytest.mark.parametrize("nodes, match", [
    ([_inp(), _unary("3", "3"), _out("2", "3")], "cycle"),
    ([_inp(), _unary("3", "4"), _unary("4", "3"), _out("2", "4")], "cycle"),
    ([{"_type": 5, "id": "1"}, _out("2", "1")], "'_type' is missing or not a string"),
    ([{"_type": ["InputNode"], "id": "1"}, _out("2", "1")], "'_type' is missing or not a string"),
    ([{"_type": "InputNode<float>", "layout": {"size": [4]}}, _out("2", "1")], r"nodes\[0\] has no valid 'id'"),
    ([{"_type": "InputNode<float>", "id": True}], r"nodes\[0\] has no valid 'id'"),
    (["InputNode", _out("2", "1")], r"nodes\[0\] is str"),
    ([None, _out("2", "1")], r"nodes\[0\] is NoneType"),
    ([_inp(), _inp(), _out("2", "1")], "two nodes have the id 1"),
    ([_inp(size=2**40), _out("2", "1")], "'layout.size'"),
    ([_inp(size="4"), _out("2", "1")], "'layout.size'"),
    ([_inp(), _unary("3", "1", op=["abs"]), _out("2", "3")], "unsupported unary operation"),
    ([_inp(), {"_type": "IIRFilterNode<float>", "id": "3", "input": _port("1"), "filter": {"b": [], "a": []}},
      _out("2", "3")], r"'filter.b' has 0 values, outside 1\.\.16384"),
    ([_inp(), {"_type": "UnaryOperationNode<float>", "id": "3", "input": "1.output", "operation": "abs"},
      _out("2", "3")], "no input port 'input'"),
])
def test_bad_ell_nodes(tmp_path, nodes, match):
    refused(load_ell, _write(tmp_path, _ell(nodes)), match=match)


@pytest.mark.parametrize("doc, match", [
    ([1, 2], "no model.nodes"), ("null", "no model.nodes"), ({"model": []}, "no model.nodes"),
    ({"model": {"nodes": {"1": {}}}}, "model.nodes is dict"), ({"model": {"nodes": "x"}}, "model.nodes is str"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"model": {"nodes": [' + "1" * 5000 + "]}}", "invalid JSON"),
])
def test_bad_ell_documents(tmp_path, doc, match):
    refused(load_ell, _write(tmp_path, doc), ModelFormatError, match=match)


def test_ell_3000_node_chain_imports_without_recursion(tmp_path):
    """Walked iteratively, shapes kept as nodes are added: linear time (DCTs ask their input's size)."""
    nodes = [_inp()] + [_unary(str(10 + k), str(9 + k) if k else "1") for k in range(3000)] + [_out("2", "3009")]
    for n in nodes[5:3000:10]:
        n.update({"_type": "DCTNode<float>", "numFilters": 4})
    with deadline(30):
        g = load_ell(_write(tmp_path, _ell(nodes)))
    assert len(g.by_op("unary")) == 2700 and len(g.by_op("dct")) == 300


def test_ell_node_count_is_capped(tmp_path):
    nodes = [_inp()] + [_unary(str(10 + k), "1") for k in range(MAX_NODES)] + [_out("2", "10")]
    refused(load_ell, _write(tmp_path, _ell(nodes)), ModelImportError, match=f"more than the {MAX_NODES} allowed")


def test_ell_repeated_keys_are_parsed_in_linear_time(tmp_path):
    """The duplicate-"activation" parsing keeps k, k__2, ...: 100,000 repeats of one key must not be quadratic."""
    body = ", ".join(f'"a": {k}' for k in range(100_000))
    refused(load_ell, _write(tmp_path, "{" + body + "}"), ModelFormatError, match="no model.nodes", seconds=10)


@pytest.mark.parametrize("prefix, change, match", [
    ("FFTNode", lambda n: n.update(fftSize=2**36), "'fftSize' is 68719476736"),
    ("FFTNode", lambda n: n.update(fftSize="512"), "'fftSize' must be an integer"),
    ("FFTNode", lambda n: n.update(fftSize=1e300), "'fftSize'"),
    ("MelFilterBankNode", lambda n: n["filters"].update(numFilters=10**7), "'filters.numFilters' is 10000000"),
    ("MelFilterBankNode", lambda n: n["filters"].update(rate=float("nan")), "'filters.rate' must be a finite"),
    ("MelFilterBankNode", lambda n: n["filters"].update(rate=0), "'filters.rate' is 0"),
    ("MelFilterBankNode", lambda n: n["filters"].update(end=10**9), "'filters.end'"),
    ("MelFilterBankNode", lambda n: n.update(filters=[1, 2]), "'filters.windowSize' is missing"),
    ("BufferNode", lambda n: n.update(windowSize=10**12), "'windowSize' is 1000000000000"),
    ("BufferNode", lambda n: n.update(windowSize=[512]), "'windowSize' must be an integer"),
    ("BufferNode", lambda n: n.update(windowSize=0), "'windowSize' is 0"),
    ("ConstantNode", lambda n: n.update(values=[float("nan")] * 80), "'values' holds NaN"),
    ("ConstantNode", lambda n: n.update(values=[float("inf")] * 80), "'values' holds NaN"),
    ("ConstantNode", lambda n: n.update(values=[1e300] * 80), "out-of-range"),
    ("ConstantNode", lambda n: n.update(values=[[1.0]] * 80), "'values' must be a list of numbers"),
    ("ConstantNode", lambda n: n.update(values={"a": 1}), "'values' must be a list of numbers"),
    ("ConstantNode", lambda n: n.update(values=[10**400] * 80), "must be a list of numbers"),
    ("ConstantNode", lambda n: n.update(values=[1.0] * 7), r"\(80,\) and \(7,\) do not broadcast"),
    ("InputNode", lambda n: n["layout"].update(size=[2**40]), "'layout.size'"),
    ("InputNode", lambda n: n["layout"].update(size=[0]), "'layout.size'"),
    ("BinaryOperationNode", lambda n: n.update(operation=None), "unsupported binary operation"),
    ("OutputNode", lambda n: n.update(input={"input": "1026.output"}), "cycle"),
])
def test_hostile_featurizer_fields(tmp_path, featurizer_doc, prefix, change, match):
    refused(load_ell, _write(tmp_path, _mutate(featurizer_doc, prefix, change)), ModelImportError, match=match)


@pytest.mark.parametrize("prefix, change, match", [
    ("GRUNode", lambda n: n.update(hiddenUnits=10**9), "'hiddenUnits' is 1000000000"),
    ("GRUNode", lambda n: n.update(hiddenUnits=99),
     "inputWeights has 24000 values; 3 gates of 99 units over 80 inputs need 23760"),
    ("GRUNode", lambda n: n.update(activation="tanh"), "unsupported activation"),
    ("GRUNode", lambda n: n.pop("activation"), "'activation' is missing"),
    ("FullyConnectedLayerNode", lambda n: n["layer"].update(weights_rows=10**12), "'layer.weights_rows'"),
    ("FullyConnectedLayerNode", lambda n: n["layer"].update(weights_columns=7), "3100 values, 31 x 7"),
    ("FullyConnectedLayerNode", lambda n: n["layer"].update(weights_values=None), "must be a list of numbers"),
    ("ConstantNode<float>", lambda n: n.update(values=[float("nan")] * len(n["values"])), "'values' holds NaN"),
    ("VoiceActivityDetector", lambda n: n["vad"].update(sampleRate=-1), "'vad.sampleRate' is -1"),
    ("VoiceActivityDetector", lambda n: n["vad"].update(tauUp="x"), "'vad.tauUp' must be a finite number"),
    ("VoiceActivityDetector", lambda n: n.update(vad=None), "'vad.tauUp' is missing"),
])
def test_hostile_classifier_fields(tmp_path, classifier_doc, prefix, change, match):
    refused(load_ell, _write(tmp_path, _mutate(classifier_doc, prefix, change)), ModelImportError, match=match)


def test_ell_fifo_and_folder_are_refused(tmp_path):
    fifo = tmp_path / "m.ell"
    os.mkfifo(fifo)
    refused(load_ell, fifo, ModelFormatError, match="FIFO", seconds=5)
    refused(load_ell, tmp_path, ModelFormatError, match="folder", seconds=5)


# ---------------------------------------------------------------------- ONNX
def _vi(name, dims, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, dims)


def _onnx(tmp_path, nodes, inits=(), out="y", inp=("x", [1, "time", 4]), opset=13, name="m.onnx", save=True):
    g = helper.make_graph(list(nodes), "g", [_vi(*inp)], [_vi(out, None)], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    p = tmp_path / name
    if save:
        p.write_bytes(m.SerializeToString())
        return p
    return m, p


def _w(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def test_small_onnx_model_imports(tmp_path):
    """The base of the cases below is itself a good model."""
    p = _onnx(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"])], [_w("w", np.ones((4, 3), np.float32))])
    assert load_onnx(p).output_size == 3


@pytest.mark.parametrize("nodes, match", [
    ([helper.make_node("Identity", ["y"], ["y"])], "cycle"),
    ([helper.make_node("Relu", ["b"], ["y"]), helper.make_node("Add", ["x", "y"], ["b"])], "cycle"),
    ([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Abs", ["x"], ["y"])], "output of two nodes"),
])
def test_onnx_graph_cycles_are_refused(tmp_path, nodes, match):
    refused(load_onnx, _onnx(tmp_path, nodes), ModelFormatError, match=match, seconds=10)


def test_small_constant_subgraphs_still_fold(tmp_path):
    """The size and work checks let ordinary constant arithmetic through: y = x + mean(A @ B)."""
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.ones((4, 4), np.float32)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("ReduceMean", ["m"], ["r"], axes=[0]),
             helper.make_node("Add", ["x", "r"], ["y"])]
    g = load_onnx(_onnx(tmp_path, nodes, [_w("a", a), _w("b", b)]))
    assert [n.op for n in g.nodes] == ["input", "affine", "output"]
    np.testing.assert_array_equal(g.nodes[1].params["shift"], (a @ b).mean(0))


def test_onnx_node_order_need_not_be_the_files(tmp_path):
    """An acyclic graph listed out of order still imports (visited in dependency order)."""
    nodes = [helper.make_node("Abs", ["a"], ["y"]), helper.make_node("Relu", ["x"], ["a"])]
    assert [n.op for n in load_onnx(_onnx(tmp_path, nodes)).nodes] == ["input", "unary", "unary", "output"]


def test_onnx_long_chains_import_in_linear_time(tmp_path):
    """3000 nodes (identities, reshapes back and forth, constant adds): walked without recursion,
    and the clean-up passes sweep the graph a few times instead of once per change."""
    ops = [("Identity", []), ("Reshape", ["s4"]), ("Reshape", ["s3"]), ("Add", ["c"])]
    nodes = [helper.make_node(ops[k % 4][0], ["x" if k == 0 else f"t{k}"] + ops[k % 4][1], [f"t{k + 1}"])
             for k in range(3000)]
    nodes.append(helper.make_node("Relu", ["t3000"], ["y"]))
    inits = [_w("s4", np.array([1, -1, 2, 2])), _w("s3", np.array([1, -1, 4])), _w("c", np.ones(4, np.float32))]
    with deadline(30):
        g = load_onnx(_onnx(tmp_path, nodes, inits))
    assert [n.op for n in g.nodes] == ["input", "affine", "unary", "output"]
    np.testing.assert_array_equal(g.nodes[1].params["shift"], np.full(4, 750, np.float32))


def test_onnx_node_count_is_capped(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], [f"t{k}"]) for k in range(MAX_NODES)] + [
        helper.make_node("Relu", ["x"], ["y"])
    ]
    refused(load_onnx, _onnx(tmp_path, nodes), ModelImportError, match=f"more than the {MAX_NODES} allowed")


W4 = np.ones((4, 3), np.float32)
RELU_T = helper.make_node("Relu", ["t"], ["y"])


@pytest.mark.parametrize("nodes, inits, match", [
    # missing inputs, wrong attribute types, wrong ranks
    ([helper.make_node("Gemm", ["x"], ["y"])], [], "malformed node"),
    ([helper.make_node("MatMul", ["x"], ["y"])], [], "malformed node"),
    ([helper.make_node("GRU", ["x"], ["y"], hidden_size=3)], [], "malformed node"),
    ([helper.make_node("GRU", ["x", "w", "w"], ["y"], hidden_size=3)], [_w("w", W4)], "unexpected weight shapes"),
    ([helper.make_node("Conv", ["x", "w"], ["y"])], [_w("w", W4)], "malformed node"),
    ([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 7, 1]), RELU_T], [], "malformed node"),
    ([helper.make_node("Transpose", ["x"], ["t"], perm="abc"), RELU_T], [], "malformed node"),
    ([helper.make_node("Softmax", ["x"], ["y"], axis=9)], [], "malformed node"),
    ([helper.make_node("Softmax", ["x"], ["y"], axis=-4)], [], "malformed node"),
    ([helper.make_node("Concat", ["x", "x"], ["y"], axis=5)], [], "malformed node"),
    ([helper.make_node("Flatten", ["x"], ["t"], axis="a"), RELU_T], [], "malformed node"),
    ([helper.make_node("Split", ["x"], ["t", "z"], axis=2, split=[2**40, 1]), RELU_T], [], "cannot reshape"),
    ([helper.make_node("Pad", ["x", "p"], ["y"])], [_w("p", np.array([0, 0, 0, 0, 0, 2**40], np.int64))],
     "at most"),
    ([helper.make_node("Expand", ["x", "s"], ["y"])], [_w("s", np.array([1, 4096, 4096, 1, 4], np.int64))],
     "larger than allowed"),
    ([helper.make_node("ConstantOfShape", ["s"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])],
     [_w("s", np.array([10**6, 10**6, 4], np.int64))], "at most 67108864 elements"),
    ([helper.make_node("Range", ["a", "b", "d"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])],
     [_w("a", np.array(0.0, np.float32)), _w("b", np.array(1e12, np.float32)), _w("d", np.array(1.0, np.float32))],
     "larger than allowed"),
    ([helper.make_node("Tile", ["w", "r"], ["c"]), helper.make_node("MatMul", ["x", "c"], ["y"])],
     [_w("w", W4), _w("r", np.array([2**20, 2**20], np.int64))], "larger than allowed"),
    ([helper.make_node("MatMul", ["x", "w"], ["y"])], [_w("w", np.full((4, 3), np.nan, np.float32))], "NaN"),
    ([helper.make_node("Conv", ["i", "k"], ["c"]), helper.make_node("ReduceMean", ["c"], ["r"], keepdims=0),
      helper.make_node("Add", ["x", "r"], ["y"])],
     [_w("i", np.ones((1, 8, 128, 128), np.float32)), _w("k", np.ones((256, 8, 9, 9), np.float32))],
     r"takes about 2\.4e\+09 operations"),
    ([helper.make_node("Loop", ["n", ""], ["l"], body=helper.make_graph([], "b", [], [])),
      helper.make_node("Add", ["x", "l"], ["y"])],
     [_w("n", np.array(2**62, np.int64))], "unsupported ONNX operators: Loop"),
])
def test_mutated_onnx_graphs(tmp_path, nodes, inits, match):
    refused(load_onnx, _onnx(tmp_path, nodes, inits), ModelImportError, match=match)


def test_attribute_without_a_value_is_a_typed_error(tmp_path):
    node = helper.make_node("LeakyRelu", ["x"], ["y"])
    bad = node.attribute.add()
    bad.name, bad.type = "alpha", 0  # UNDEFINED: no value
    refused(load_onnx, _onnx(tmp_path, [node]), ModelImportError, match="LeakyRelu.*malformed node")


def _tensor(name, dims, **fields):
    t = TensorProto()
    t.name, t.data_type = name, fields.pop("data_type", TensorProto.FLOAT)
    t.dims.extend(dims)
    for k, v in fields.items():
        if isinstance(v, bytes):
            setattr(t, k, v)
        else:
            getattr(t, k).extend(v)
    return t


@pytest.mark.parametrize("tensor", [
    _tensor("w", [4, 3], float_data=[1.0, 2.0]),
    _tensor("w", [4, 3], raw_data=b"\0" * 7),
    _tensor("w", [2**40, 2**40], raw_data=b"\0" * 48),
    _tensor("w", [4, 3], data_type=999, raw_data=b"\0" * 48),
    _tensor("w", [4, 3], data_type=TensorProto.STRING, string_data=[b"a"] * 12),
    _tensor("w", [-4, -3], float_data=[1.0] * 12),
])
def test_malformed_initializers(tmp_path, tensor):
    p = _onnx(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"])], [tensor])
    refused(load_onnx, p, KwsError)


def test_absurd_input_dims_are_refused(tmp_path):
    p = _onnx(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], inp=("x", [1, "time", 2**40]))
    refused(load_onnx, p, ModelImportError, match="larger than allowed")


@pytest.fixture
def external(tmp_path):
    """A model whose weight lives in w.bin beside it; returns (model, path) to edit and save."""
    m, p = _onnx(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"])], [_w("w", W4)], save=False)
    (tmp_path / "w.bin").write_bytes(W4.tobytes())
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "48")):
        e = t.external_data.add()
        e.key, e.value = k, v
    return m, p


def _set_external(m, key, value):
    for e in m.graph.initializer[0].external_data:
        if e.key == key:
            e.value = value


def test_external_data_fixture_imports(external):
    m, p = external
    onnx.save(m, p)
    assert load_onnx(p).output_size == 3


@pytest.mark.parametrize("key, value, match", [
    ("offset", "-100", "offset '-100' is not a byte count"),
    ("offset", "abc", "offset 'abc' is not a byte count"),
    ("offset", "99999999999999999999999", "is not a byte count"),
    ("offset", "\u00b2", "is not a byte count"),
    ("offset", "40", "truncated"),
    ("length", "1e3", "length '1e3' is not a byte count"),
    ("length", "4800", "has 4800 bytes"),
    ("location", "../w.bin", "outside the model's folder"),
    ("location", "/etc/passwd", "outside the model's folder"),
])
def test_hostile_external_data_entries(external, key, value, match):
    m, p = external
    _set_external(m, key, value)
    onnx.save(m, p)
    refused(load_onnx, p, ModelFormatError, match=match)


def test_external_data_with_huge_dims_is_refused_before_reading(external):
    m, p = external
    t = m.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([2**31, 2**31])
    onnx.save(m, p)
    refused(load_onnx, p, ModelFormatError, match="larger than the")


def test_external_data_fifo_is_refused(external):
    m, p = external
    os.remove(p.parent / "w.bin")
    os.mkfifo(p.parent / "w.bin")
    onnx.save(m, p)
    refused(load_onnx, p, ModelFormatError, match="w.bin: external data file must be a regular file, this is a FIFO",
            seconds=5)


def test_onnx_fifo_and_device_are_refused(tmp_path):
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    refused(load_onnx, fifo, ModelFormatError, match="FIFO", seconds=5)
    refused(load_onnx, "/dev/zero", ModelFormatError, match="device", seconds=5)


def test_names_that_are_not_utf8_are_refused(tmp_path):
    p = _onnx(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    p.write_bytes(p.read_bytes().replace(b"Relu", b"R\xfflu"))
    refused(load_onnx, p, ModelFormatError, match="not valid UTF-8")


def test_metadata_that_is_not_utf8_or_nested_deeply_imports(tmp_path):
    """Deeply nested labels are not JSON we read (taken as one comma-separated label); invalid UTF-8 is skipped."""
    m, p = _onnx(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], save=False)
    m.producer_name = "PRODUCER"
    helper.set_model_props(m, {"labels": "[" * 100_000 + "]" * 100_000, "classes": "CLASSES"})
    p.write_bytes(m.SerializeToString().replace(b"PRODUCER", b"PR\xffDUCER").replace(b"CLASSES", b"CL\xffSSES"))
    g = load_onnx(p)
    assert g.metadata["source"]["producer"] == "PR\ufffdDUCER"
    assert g.metadata["categories"] == ["[" * 100_000 + "]" * 100_000]


@pytest.mark.parametrize("value", [np.full(4, 1 + 2j, np.complex64), np.array(["a", "b", "c", "d"])])
def test_constants_that_are_not_real_numbers_are_refused(tmp_path, value):
    p = _onnx(tmp_path, [helper.make_node("Add", ["x", "c"], ["y"])], [_w("c", value)])
    refused(load_onnx, p, ModelImportError, match="must be a tensor of real numbers")
