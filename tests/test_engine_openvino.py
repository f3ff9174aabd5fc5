"""engine='openvino' (nlu_lite/openvino_engine.py): the same graphs on OpenVINO, f32 against onnxruntime, bf16 where
the CPU has it, and the same-vector promise kept by batching sequences of one length."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import nlu_lite
from nlu_lite.errors import InputError

ov = pytest.importorskip("openvino")

from nlu_lite.openvino_engine import OpenVinoEncoder, bf16_supported

TEXTS = ["I love NLP.", "Paris is a big city in France, and the dog runs to the river bank.", "x",
         "The committee postponed its decision on the new railway line until next spring.", "a cat", "a cat"]
BF16 = pytest.mark.skipif(not bf16_supported(), reason="this CPU has no bf16 for OpenVINO (AVX512_BF16 or AMX)")


@pytest.fixture(scope="module")
def pipes(tiny_bert_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("ov_cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        yield {"ort": nlu_lite.load(path=tiny_bert_dir),
               "fp32": nlu_lite.load(path=tiny_bert_dir, engine="openvino"),
               **({"bf16": nlu_lite.load(path=tiny_bert_dir, precision="bf16")} if bf16_supported() else {})}


def test_openvino_fp32_equals_onnxruntime(pipes):
    assert isinstance(pipes["fp32"].encoder, OpenVinoEncoder) and "OpenVINO" in repr(pipes["fp32"])
    for level in ("token", "sentence", "document"):
        got = nlu_lite.to_matrix(pipes["fp32"].predict(TEXTS, output_level=level))
        want = nlu_lite.to_matrix(pipes["ort"].predict(TEXTS, output_level=level))
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5, err_msg=level)


@BF16
def test_bf16_is_close_to_fp32(pipes):
    assert pipes["bf16"].recipe.engine == "openvino" and pipes["bf16"].precision == "bf16"  # bf16 picked the engine
    got = nlu_lite.to_matrix(pipes["bf16"].predict(TEXTS, output_level="token"))
    want = nlu_lite.to_matrix(pipes["ort"].predict(TEXTS, output_level="token"))
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.999 and np.abs(got - want).max() > 1e-6, (cos.min(), np.abs(got - want).max())


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=BF16)])
def test_a_texts_vectors_do_not_depend_on_its_batch(pipes, precision):
    pipe = pipes[precision]
    corpus = [f"{t} number {i}" for i in range(25) for t in TEXTS[:4]]
    for level in ("token", "sentence"):
        alone = nlu_lite.to_matrix(pipe.predict([TEXTS[1]], output_level=level))
        for options in ({}, {"batch_size": 3}, {"deduplicate": False}, {"max_batch_tokens": 64}):
            frame = pipe.predict([*corpus[:50], TEXTS[1], *corpus[50:]], output_level=level, **options)
            rows = frame["origin_index"].to_numpy() == 50
            np.testing.assert_array_equal(nlu_lite.to_matrix(frame)[rows], alone, err_msg=f"{level} {options}")


def test_equal_length_batches_pad_nothing(pipes):
    from nlu_lite.batching import iter_batches
    from nlu_lite.windows import plan_sequences

    tok = pipes["fp32"].tokenizer
    pieces = tok.encode(TEXTS * 3, words=False)
    seqs = plan_sequences(pieces, 30, 10)
    batches = list(iter_batches(pieces, seqs, tok.framing, batch_size=4, max_batch_tokens=1024, equal_lengths=True))
    assert sorted(int(s) for b in batches for s in b.seq) == list(range(len(seqs.lengths)))  # every sequence once
    assert all(b.attention_mask.all() for b in batches)  # no padding anywhere
    padded = list(iter_batches(pieces, seqs, tok.framing, batch_size=4, max_batch_tokens=1024))
    assert not all(b.attention_mask.all() for b in padded)  # the default batching pads


def test_engine_and_precision_are_checked_before_any_work():
    with pytest.raises(InputError, match="precision='int8' runs on onnxruntime"):
        nlu_lite.load("en.embed.minilm_l6", engine="openvino", precision="int8")
    with pytest.raises(InputError, match="precision='bf16' runs on OpenVINO"):
        nlu_lite.load("en.embed.minilm_l6", engine="onnxruntime", precision="bf16")
    with pytest.raises(InputError, match="engine must be one of"):
        nlu_lite.load("en.embed.minilm_l6", engine="tensorrt")
    with pytest.raises(InputError, match="providers= and gpu= are onnxruntime's"):
        nlu_lite.load("en.embed.minilm_l6", engine="openvino", gpu=True)


def test_bf16_on_a_cpu_without_it_says_what_it_lacks(pipes, monkeypatch):
    class NoBf16(ov.Core):
        def get_property(self, device, name):  # the capability list of a CPU without bf16
            return ["FP32", "INT8"] if name == "OPTIMIZATION_CAPABILITIES" else super().get_property(device, name)

    monkeypatch.setattr(ov, "Core", NoBf16)
    with pytest.raises(InputError, match="needs a CPU with bf16 instructions .AVX512_BF16 or AMX.") as info:
        OpenVinoEncoder.from_path(pipes["fp32"].model_path, precision="bf16")
    assert "precision='fp32'" in str(info.value)


def test_pickles_bundles_and_workers_keep_the_engine(pipes, tmp_path):
    from nlu_lite import pipeline as pipeline_module
    from nlu_lite.runners import runtime_of, worker_pipeline

    pipe = pipes["fp32"]
    want = pipe.embed(TEXTS)
    blob = pickle.dumps(pipe)
    pipeline_module._LIVE.clear()
    pipeline_module._KEPT.clear()
    again = pickle.loads(blob)
    assert isinstance(again.encoder, OpenVinoEncoder)
    np.testing.assert_array_equal(again.embed(TEXTS), want)
    bundle = pipe.save(tmp_path / "bundle")
    from_bundle = nlu_lite.load(path=bundle, engine="openvino")
    assert isinstance(from_bundle.encoder, OpenVinoEncoder)
    np.testing.assert_array_equal(from_bundle.embed(TEXTS), want)
    assert runtime_of(pipe) == "openvino/fp32" and runtime_of(pipes["ort"]) == "onnxruntime"
    worker = worker_pipeline(bundle, 1, runtime="openvino/fp32")
    assert isinstance(worker.encoder, OpenVinoEncoder)
    np.testing.assert_array_equal(worker.embed(TEXTS), want)


def test_threads_sharing_one_openvino_pipeline_get_their_own_results(pipes):
    """Dask's threaded scheduler runs one worker pipeline from several threads: one shared infer request made
    calls fail ('Infer Request is busy') or return another call's output."""
    from concurrent.futures import ThreadPoolExecutor

    pipe = pipes["fp32"]
    texts = [f"{t} {i}" for i in range(6) for t in TEXTS]
    want = {t: pipe.embed([t])[0] for t in texts}
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: pipe.embed([t])[0], texts * 4))
    for text, vector in zip(texts * 4, got):
        np.testing.assert_array_equal(vector, want[text])


@pytest.mark.parametrize(("precision", "providers", "installed", "flags", "expected"), [
    (None, None, True, {"avx2", "avx512f"}, "openvino"),
    ("fp32", None, True, {"avx2"}, "onnxruntime"),  # AVX2 only: OpenVINO f32 measured no faster
    ("fp32", None, False, {"avx512f"}, "onnxruntime"),  # not installed
    ("bf16", None, True, {"avx2"}, "openvino"),  # the only engine running bf16 (its own check says if the CPU can)
    ("int8", None, True, {"avx512f"}, "onnxruntime"),  # the only engine running nlu_lite's int8 graph
    ("fp32", ("CPUExecutionProvider",), True, {"avx512f"}, "onnxruntime"),  # providers are onnxruntime's
])
def test_engine_auto_is_decided_by_precision_installation_and_cpu_flags(monkeypatch, precision, providers,
                                                                       installed, flags, expected):
    from nlu_lite import runtime

    monkeypatch.setattr(runtime, "openvino_installed", lambda: installed)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    options = runtime.LoadOptions.resolve(engine="auto", precision=precision, providers=providers)
    assert options.engine == expected == runtime.auto_engine(precision, providers)


def test_engine_auto_loads_this_machines_choice_and_keeps_it(tiny_bert_dir, isolated_cache):
    from nlu_lite import runtime

    pipe = nlu_lite.load(path=tiny_bert_dir, engine="auto")
    assert pipe.recipe.engine == runtime.auto_engine(None) and pipe.recipe.engine in ("onnxruntime", "openvino")
    assert pickle.loads(pickle.dumps(pipe)).recipe.engine == pipe.recipe.engine  # resolved once, not per worker
    assert runtime.cpu_flags() == runtime.cpu_flags()  # one machine, one answer
    with pytest.raises(InputError, match="'auto'"):
        nlu_lite.load(path=tiny_bert_dir, engine="fastest")
