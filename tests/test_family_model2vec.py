"""model2vec static models (MinishLab) through the static family, against model2vec itself on a folder laid out as
it saves one: the table and the model's own tokenizer, sentence vectors the mean of the known pieces' rows."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import nlu_lite
from nlu_lite.convert.static import is_model2vec
from nlu_lite.errors import ConversionError

model2vec = pytest.importorskip("model2vec")

TEXTS = ["the dog runs to the river bank", "Paris is a city.", "zzqx ÿÿ unknown", "a", "naïve café", "☃☃☃"]


def build_model2vec(folder, tiny_bert_dir, *, normalize: bool, extra: dict | None = None, dim: int = 12):
    folder.mkdir(parents=True)
    shutil.copy(tiny_bert_dir / "tokenizer.json", folder / "tokenizer.json")
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    rng = np.random.default_rng(3)
    from safetensors.numpy import save_file

    save_file({"embeddings": rng.normal(size=(len(vocab), dim)).astype(np.float32), **(extra or {})},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "model2vec", "architectures": ["StaticModel"],
                                                    "hidden_dim": dim, "normalize": normalize, "max_length": 512}))
    return folder


@pytest.mark.parametrize("normalize", [True, False])
def test_sentence_vectors_equal_model2vec(tmp_path, tiny_bert_dir, isolated_cache, normalize):
    folder = build_model2vec(tmp_path / "m2v", tiny_bert_dir, normalize=normalize)
    assert is_model2vec(folder)
    pipe = nlu_lite.load(path=folder)
    assert (pipe.spec.task, pipe.spec.normalize, pipe.spec.architecture) == ("sentence", normalize, "static-vectors")
    got = pipe.embed(TEXTS)
    want = model2vec.StaticModel.from_pretrained(str(folder)).encode(TEXTS)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    alone = pipe.embed(TEXTS[2:3])[0]
    np.testing.assert_array_equal(alone, got[2])  # a text's vector does not depend on its batch
    tokens = pipe.predict(TEXTS[:2], output_level="token")
    assert len(tokens) == 12 and nlu_lite.to_matrix(tokens).shape == (12, 12)  # 7 words + Paris is a city .


def test_weighted_or_quantised_model2vec_models_are_refused(tmp_path, tiny_bert_dir, isolated_cache):
    folder = build_model2vec(tmp_path / "weighted", tiny_bert_dir, normalize=True,
                             extra={"weights": np.ones(10, np.float32)})
    with pytest.raises(ConversionError, match="weighted or vocabulary-quantised model2vec"):
        nlu_lite.load(path=folder)
