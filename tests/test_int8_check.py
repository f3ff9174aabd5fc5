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
    assert message.count("kept fp32: per-token cosine mean") == len(check_module.ESCALATION)
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
