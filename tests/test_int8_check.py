"""Issue 22: int8 that checks itself. A new int8 graph is measured against fp32 on the shipped check corpus,
kept more in fp32 until it meets the bound, or refused with its figures; the report is stored with the cached
graph and shown by print_info() and repr()."""
from __future__ import annotations

import numpy as np
import pytest

import nlu_lite
import nlu_lite.int8_check as check_module
from nlu_lite.convert.int8 import make_plan, rewrite
from nlu_lite.convert.store import int8_report
from nlu_lite.errors import ConversionError


def test_measure_is_the_cosine_of_every_position_and_of_each_sequences_mean():
    rng = np.random.default_rng(0)
    fp32 = [rng.normal(size=(n, 8)) for n in (3, 5, 1)]
    int8 = [f + rng.normal(size=f.shape) * 0.05 for f in fp32]
    got = check_module.measure(fp32, int8)
    cos = np.concatenate([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(q, f)]
                          for q, f in zip(int8, fp32)])
    pooled = [q.mean(0) @ f.mean(0) / np.linalg.norm(q.mean(0)) / np.linalg.norm(f.mean(0)) for q, f in zip(int8, fp32)]
    assert got == {"token_mean": round(float(cos.mean()), 6), "token_min": round(float(cos.min()), 6),
                   "sentence_mean": round(float(np.mean(pooled)), 6), "positions": 9}


def test_the_check_corpus_is_shipped_and_varied():
    texts = check_module.corpus()
    assert len(texts) >= 30 and min(map(len, texts)) <= 3 and max(map(len, texts)) >= 120
    import unicodedata

    names = {unicodedata.name(ch, "").split(" ")[0] for t in texts for ch in t}
    assert {"LATIN", "CYRILLIC", "CJK", "HANGUL", "ARABIC", "DEVANAGARI", "GREEK", "HIRAGANA"} <= names


@pytest.mark.parametrize(("raw", "expected"), [("", (0.998, 0.98)), ("0.997,0.6", (0.997, 0.6))])
def test_the_bound_comes_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("NLU_LITE_INT8_BOUND", raw)
    assert check_module.bound_from_env() == expected


@pytest.mark.parametrize("raw", ["0.99", "a,b", "0.9,0.95", "1.5,0.9"])
def test_a_bad_bound_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("NLU_LITE_INT8_BOUND", raw)
    with pytest.raises(ConversionError, match="NLU_LITE_INT8_BOUND"):
        check_module.bound_from_env()


def test_keeping_a_kind_fp32_leaves_those_matmuls_float(tiny_bert_dir, tmp_path, isolated_cache):
    import json

    import onnx

    from nlu_lite.convert import ensure_onnx
    from nlu_lite.convert.graph import METADATA_KEY

    path = ensure_onnx(tiny_bert_dir)
    model = onnx.load_model(str(path))
    metadata = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    counts = {}
    for kinds in ((), ("gelu",), ("gelu", "ln")):
        plan = make_plan(onnx.load_model(str(path)), metadata, keep_kinds=kinds)
        quantised = rewrite(onnx.load_model(str(path)), plan)
        counts[kinds] = sum(n.op_type == "MatMulIntegerToFloat" for n in quantised.graph.node)
        assert not set(plan.kinds.values()) & set(kinds)  # no input of a kept kind is quantised
    assert counts[()] > counts[("gelu",)] > counts[("gelu", "ln")]


def _gelu_fed(model):
    from nlu_lite.convert.int8 import _Graph, _input_kind, _weight_matmuls

    g = _Graph(model.graph)
    return [n for n in _weight_matmuls(g) if _input_kind(g, n.input[0]) == "gelu"]


@pytest.fixture()
def tiny_fp32(tiny_bert_dir, isolated_cache):
    import json

    import onnx

    from nlu_lite.convert import ensure_onnx
    from nlu_lite.convert.graph import METADATA_KEY

    path = ensure_onnx(tiny_bert_dir)
    metadata = json.loads({p.key: p.value for p in onnx.load_model(str(path)).metadata_props}[METADATA_KEY])
    return path, metadata


def _run(model, outputs, ids):
    import onnx
    import onnxruntime as ort

    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in outputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(outputs, session.run(outputs, {"input_ids": ids, "attention_mask": np.ones_like(ids)})))


@pytest.mark.parametrize("op", ["Gelu", "Relu"])
def test_the_simulated_int8_error_is_what_the_rewrite_computes(op):
    """bounded_errors ranks MatMuls by a simulation of the rewrite's per-token quantisation of a GELU/ReLU output:
    the int8 graph's MatMul output is that simulation, at every row scale (the floor for small rows included)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from nlu_lite.convert.int8 import bounded_dequantised, quantize_weight

    rng = np.random.default_rng(1)
    w = rng.normal(size=(64, 24)).astype(np.float32)
    domain = "com.microsoft" if op == "Gelu" else ""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["act"], domain=domain), helper.make_node("MatMul", ["act", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("act", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    plan = make_plan(model, {})
    assert plan.kinds == {"act": op.lower()}
    quantised = rewrite(onnx.load_model_from_string(model.SerializeToString()), plan)
    x = (rng.normal(size=(40, 64)) * np.repeat([0.05, 0.5, 3.0, 40.0], 10)[:, None]).astype(np.float32)
    run = ort.InferenceSession(quantised.SerializeToString(), providers=["CPUExecutionProvider"]).run
    y, act = run(["y", "act"], {"x": x})
    q, scale = quantize_weight(w)
    expected = bounded_dequantised(act, op.lower()) @ (q.astype(np.float32) * scale)
    for rows in np.split(np.arange(40), 4):  # each magnitude to its own precision
        assert np.abs(y[rows] - expected[rows]).max() <= 1e-5 * np.abs(expected[rows]).max()
        exact = act[rows] @ w  # and int8 did change it: the simulation has something to measure
        assert np.abs(y[rows] - exact).max() > 1e-4 * np.abs(exact).max()


def test_bounded_errors_are_the_int8_error_over_the_residual_stream_it_joins(tiny_fp32):
    import onnx

    from nlu_lite.convert.int8 import (
        _Graph,
        bounded_dequantised,
        bounded_errors,
        quantize_weight,
    )

    path, _ = tiny_fp32
    model = onnx.load_model(str(path))
    rng = np.random.default_rng(2)
    feeds = [{"input_ids": rng.integers(5, 160, size=(1, n)), "attention_mask": np.ones((1, n), np.int64)}
             for n in (7, 30)]
    errors = bounded_errors(model, feeds)
    matmuls = _gelu_fed(model)
    assert sorted(errors) == sorted(n.input[1] for n in matmuls)
    assert list(errors.values()) == sorted(errors.values(), reverse=True)
    # by hand for each: the MatMul, its bias Add, then the Add of the residual stream (x + FFN(x))
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    g = _Graph(model.graph)
    for node in matmuls:
        bias_add = consumers[node.output[0]][0]
        stream_add = consumers[bias_add.output[0]][0]
        assert bias_add.op_type == stream_add.op_type == "Add"
        per_position = []
        for feed in feeds:
            got = _run(onnx.load_model(str(path)), [node.input[0], stream_add.output[0]], feed["input_ids"])
            w = g.array(node.input[1])
            q, scale = quantize_weight(w)
            x = got[node.input[0]].reshape(-1, w.shape[0])
            delta = bounded_dequantised(x, "gelu") @ (q.astype(np.float32) * scale) - x @ w
            per_position.extend(np.linalg.norm(delta, axis=-1)
                                / np.linalg.norm(got[stream_add.output[0]].reshape(len(x), -1), axis=-1))
        assert errors[node.input[1]] == pytest.approx(np.mean(per_position), rel=1e-5)
    # the family's own fp32 MatMuls are not ranked
    assert bounded_errors(model, feeds, keep_fp32=[matmuls[0].input[1]]).keys() == {matmuls[1].input[1]}


def test_requantising_with_weights_keeps_exactly_those_matmuls_fp32(tiny_fp32, tmp_path):
    import json

    import onnx

    from nlu_lite.convert.graph import METADATA_KEY
    from nlu_lite.convert.store import quantize_int8

    path, _ = tiny_fp32
    name = _gelu_fed(onnx.load_model(str(path)))[1].input[1]
    counts = {}
    for weights in ((), (name,)):
        out = quantize_int8(path, tmp_path / f"{len(weights)}" / "model.onnx", keep_weights=weights)
        model = onnx.load_model(str(out))
        counts[weights] = sum(n.op_type == "MatMulIntegerToFloat" for n in model.graph.node)
        fp32_reads = {n.input[1] for n in model.graph.node if n.op_type == "MatMul"}
        assert (name in fp32_reads) == bool(weights)
        metadata = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
        assert metadata.get("int8_fp32_weights", []) == list(weights)
    assert counts[()] == counts[(name,)] + 1


def test_a_model_is_checked_once_and_its_figures_shown(tiny_bert_dir, isolated_cache, monkeypatch, capsys):
    pipe = nlu_lite.load(path=tiny_bert_dir, precision="int8")
    report = int8_report(pipe.model_path)
    assert report["accepted"] and report["bound"] == [0.998, 0.98]
    step = report["steps"][-1]
    assert step["token_mean"] >= 0.998 and step["token_min"] >= 0.98 and step["positions"] > 500
    assert "per-token cosine to fp32" in repr(pipe)
    pipe.print_info()
    assert f"{step['token_mean']:.5f} mean" in capsys.readouterr().out
    # a second load reads the stored report: the check does not run again
    monkeypatch.setattr(check_module.Int8Check, "__call__", lambda *a: pytest.fail("checked twice"))
    nlu_lite.load(path=tiny_bert_dir, precision="int8", threads=1)


def test_a_model_that_misses_the_bound_is_refused_with_every_steps_figures(tiny_bert_dir, isolated_cache, monkeypatch):
    monkeypatch.setenv("NLU_LITE_INT8_BOUND", "0.9999999,0.9999999")  # no int8 graph is that close
    with pytest.raises(ConversionError) as info:
        nlu_lite.load(path=tiny_bert_dir, precision="int8")
    message = str(info.value)
    assert "misses its accuracy bound" in message and "precision='fp32'" in message
    # two layers: nothing, the costlier of the two GELU-fed MatMuls (two thirds would be both: skipped), every
    # GELU/ReLU-fed MatMul, and the LayerNorm-fed too
    assert message.count("kept fp32: per-token cosine mean") == 4, message
    assert "1 of 2 GELU/ReLU-fed MatMuls (costliest) kept fp32" in message
    # the refusal is stored with the graph: a second load says it again without measuring again
    monkeypatch.setattr(check_module.Int8Check, "__call__", lambda *a: pytest.fail("checked twice"))
    with pytest.raises(ConversionError, match="misses its accuracy bound"):
        nlu_lite.load(path=tiny_bert_dir, precision="int8")
    # another bound is another entry: checked afresh
    monkeypatch.setenv("NLU_LITE_INT8_BOUND", "0.99,0.9")
    monkeypatch.undo()
    monkeypatch.setenv("NLU_LITE_INT8_BOUND", "0.99,0.9")
    assert int8_report(nlu_lite.load(path=tiny_bert_dir, precision="int8").model_path)["bound"] == [0.99, 0.9]


def _families():
    from test_families_end_to_end import FAMILIES

    return list(FAMILIES)


@pytest.mark.slow
@pytest.mark.parametrize("family", _families())
def test_a_random_weight_model_of_every_family_passes_the_built_in_check(family, tmp_path, isolated_cache):
    from test_families_end_to_end import _build

    _build(family, tmp_path / family)
    pipe = nlu_lite.load(path=tmp_path / family, precision="int8")
    report = int8_report(pipe.model_path)
    step = next(s for s in report["steps"] if s["kept_fp32"] == report["kept_fp32"])
    assert report["accepted"] and step["token_mean"] >= 0.998 and step["token_min"] >= 0.98, report["steps"]
