"""load('owner/name') / load('hf:owner/name'): any Hub repo of a supported architecture, against the
hub-shaped server on 127.0.0.1 (tests/_hub_server.py), through the real huggingface_hub.

Every test asserts on the server's request log: what was asked for, and that a cached model asks nothing.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _hub_server import HubServer

import nlu_lite
from nlu_lite import artifacts
from nlu_lite.api import hub_repo, spec_from_hub, usable_positions
from nlu_lite.artifacts.settings import HUB_OPTIONAL, apply_folder_settings
from nlu_lite.errors import (
    ArtifactNotFoundError,
    ConversionError,
    InputError,
    OfflineError,
)
from nlu_lite.registry import HubSource, ModelSpec

ST_REPO, PLAIN_REPO = "org/tiny-st", "org/tiny-bert"
PROMPTS = {"query": "Represent this sentence for searching relevant passages: "}


def st_layout(folder: Path, *, pooling_path: str = "1_Pooling", mode: str = "cls_token") -> Path:
    """The tiny BERT as sentence-transformers saves it: CLS pooling, Normalize, 24 tokens, BGE's query prompt."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": pooling_path, "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / pooling_path).mkdir()
    flags = {f"pooling_mode_{f}": f == mode for f in ("cls_token", "mean_tokens", "max_tokens")}
    (folder / pooling_path / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **flags}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": PROMPTS,
                                                                          "default_prompt_name": None}))
    return folder


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    folder = tmp_path_factory.mktemp("tiny_st")
    shutil.copytree(tiny_bert_dir, folder, dirs_exist_ok=True)
    return st_layout(folder)


@pytest.fixture()
def hub(isolated_cache, monkeypatch, tiny_bert_dir, st_dir):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    with HubServer() as server:
        server.st_commit = server.add_repo(ST_REPO, st_dir)
        server.plain_commit = server.add_repo(PLAIN_REPO, tiny_bert_dir)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def reference_cls(folder: Path, text: str) -> np.ndarray:
    """transformers' BertModel on the same weights: [CLS]'s last state, L2-normalised (the folder's settings)."""
    import torch
    from transformers import BertModel, BertTokenizerFast

    batch = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))([text], return_tensors="pt")
    with torch.no_grad():
        cls = BertModel.from_pretrained(folder, attn_implementation="eager").eval()(**batch).last_hidden_state[0, 0]
    return (cls / cls.norm()).numpy()


def test_a_sentence_transformers_repo_loads_by_its_id_with_its_own_settings(hub, st_dir):
    pipe = nlu_lite.load(ST_REPO)
    s = pipe.spec
    assert (s.task, s.pooling, s.normalize, s.max_length, s.architecture) == ("sentence", "cls", True, 24, "bert")
    assert (s.dim, s.layers, s.heads) == (32, 2, 4)
    assert s.prompt_texts == PROMPTS and s.default_prompt_name is None
    assert s.sources[0].revision == hub.st_commit  # pinned to the commit its config.json came from
    assert s.embedding_column == "org_tiny-st_embeddings"
    text = "the dog runs to the river bank"
    got = nlu_lite.to_matrix(pipe.predict(text, output_level="document"))[0]
    np.testing.assert_allclose(got, reference_cls(st_dir, text), atol=1e-4)

    fetched = [r.path.split("/resolve/")[1].split("/", 1)[1] for r in hub.requests if r.method == "GET"
               and "/resolve/" in r.path]
    assert sorted(fetched) == sorted(["config.json", "modules.json", "1_Pooling/config.json", "tokenizer.json",
                                      "sentence_bert_config.json", "config_sentence_transformers.json"])  # each once
    assert hub.count("GET", listener="cdn") == 1  # the weights, model.safetensors: the first the repo has
    assert hub.count("HEAD", "pytorch_model.bin") == 0

    hub.reset_counts()
    again = nlu_lite.load(f"hf:{ST_REPO}")  # cached: not one request
    assert hub.count() == 0 and again.spec == s
    offline = nlu_lite.load(ST_REPO, offline=True)
    assert hub.count() == 0 and offline.spec == s


def test_a_plain_checkpoint_repo_is_a_token_model_and_absent_files_are_remembered(hub, isolated_cache):
    pipe = nlu_lite.load(f"hf:{PLAIN_REPO}")
    s = pipe.spec
    assert (s.task, s.pooling, s.normalize, s.max_length, s.prompts) == ("token", "mean", False, 512, ())
    assert s.sources[0].files == ("config.json", "tokenizer.json")
    assert hub.count("HEAD", "modules.json") == 1  # asked once: the repo has none (a 404 is fine for it)
    frame = pipe.predict("the dog runs")
    assert list(frame.token) == ["the", "dog", "runs"]

    memo = json.loads((isolated_cache / "nlu_lite" / "hub" / "models--org--tiny-bert.json").read_text())
    assert set(memo["absent"][hub.plain_commit]) == set(HUB_OPTIONAL)
    hub.reset_counts()
    nlu_lite.load(PLAIN_REPO)
    assert hub.count() == 0  # the absent files are not asked for again


def test_a_bert_repo_without_tokenizer_json_uses_its_vocab(hub, tiny_bert_dir, tmp_path):
    folder = shutil.copytree(tiny_bert_dir, tmp_path / "vocab_only")
    (folder / "tokenizer.json").unlink()
    hub.add_repo("org/vocab-only", folder)
    pipe = nlu_lite.load("org/vocab-only")
    assert pipe.spec.sources[0].files == ("config.json", "vocab.txt")
    reference = nlu_lite.load(path=tiny_bert_dir)
    np.testing.assert_allclose(nlu_lite.to_matrix(pipe.predict("the dog runs")),
                               nlu_lite.to_matrix(reference.predict("the dog runs")), atol=1e-6)


def test_an_unsupported_model_type_names_the_supported_ones_before_any_weights(hub, tiny_bert_dir, tmp_path):
    folder = shutil.copytree(tiny_bert_dir, tmp_path / "gpt")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    hub.add_repo("org/tiny-gpt", folder)
    with pytest.raises(ConversionError, match=r"model_type 'gpt2' is not supported; nlu_lite converts") as info:
        nlu_lite.load("org/tiny-gpt")
    assert "'bert'" in str(info.value)
    assert hub.count("GET", "model.safetensors") == 0 and hub.count(listener="cdn") == 0


def test_a_pooling_module_in_another_folder_is_fetched_once_modules_json_names_it(hub, tiny_bert_dir, tmp_path):
    folder = shutil.copytree(tiny_bert_dir, tmp_path / "elsewhere")
    st_layout(folder, pooling_path="pool", mode="mean_tokens")
    hub.add_repo("org/pool-elsewhere", folder)
    s = spec_from_hub("org/pool-elsewhere")
    assert (s.pooling, s.normalize) == ("mean", True)
    assert "pool/config.json" in s.sources[0].optional
    assert hub.count("GET", "/pool/config.json") == 1


def test_offline_and_not_cached_asks_nothing(hub):
    with pytest.raises(OfflineError, match=f"hf:{ST_REPO}"):
        nlu_lite.load(ST_REPO, offline=True)
    assert hub.count() == 0


def test_a_missing_repo_is_named(hub):
    with pytest.raises(ArtifactNotFoundError, match="org/no-such-repo"):
        nlu_lite.load("hf:org/no-such-repo")


def test_a_registry_entry_with_optional_files_gains_the_folders_settings(hub):
    """What Pipeline.from_spec does after the fetch, for an entry whose repo is a sentence-transformers one."""
    entry = ModelSpec(name="tiny_st", aliases=("en.embed_sentence.tiny_st",), task="sentence", dim=32, layers=2,
                      heads=4, pooling="mean", sources=(HubSource(repo=ST_REPO, files=("config.json", "tokenizer.json"),
                                                                  optional=HUB_OPTIONAL),))
    folder = artifacts.fetch(entry)
    settled = apply_folder_settings(entry, folder)
    assert (settled.pooling, settled.normalize, settled.max_length) == ("cls", True, 24)
    assert settled.prompt_texts == PROMPTS
    hub.reset_counts()
    assert artifacts.is_cached(entry) and artifacts.fetch(entry, offline=True) == folder
    assert hub.count() == 0


def test_which_aliases_are_hub_ids(isolated_cache):
    assert hub_repo("hf:BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
    assert hub_repo("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    assert hub_repo("hf:bert-base-uncased") == "bert-base-uncased"  # an id without owner, with hf:
    for alias in ("en.embed.bert", "bert", "en.embed_sentence.e5_small_v2"):
        assert hub_repo(alias) is None
    for bad in ("hf:org/a--b", "hf:../etc", "hf:", "hf:a/b/c"):
        with pytest.raises(InputError, match="not a Hugging Face Hub repo id"):
            hub_repo(bad)
    nlu_lite.register_model("org/registered", repo="org/elsewhere", dim=8, layers=1, heads=2, replace=True)
    try:
        assert hub_repo("org/registered") is None  # a registry alias spelled like an id stays the registry's
    finally:
        nlu_lite.registry.default_registry.cache_clear()


def test_usable_positions_of_each_position_scheme():
    """The family says it (Family.max_length), as the converted graph's metadata does: BERT's table is
    used whole, RoBERTa's and MPNet's start after the padding row (514 -> 512)."""
    from nlu_lite.convert.families import config_from_dict

    sizes = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 48}
    assert usable_positions(config_from_dict({**sizes, "model_type": "bert", "max_position_embeddings": 512})) == 512
    for kind in ("roberta", "xlm-roberta", "camembert"):
        config = config_from_dict({**sizes, "model_type": kind, "max_position_embeddings": 514, "pad_token_id": 1})
        assert usable_positions(config) == 512
    assert usable_positions(config_from_dict({**sizes, "model_type": "mpnet", "max_position_embeddings": 514})) == 512


def test_usable_positions_of_a_real_roberta_config(tmp_path):
    roberta = pytest.importorskip("nlu_lite.convert.roberta")
    config = roberta.RobertaConfig.from_dict({"model_type": "xlm-roberta", "vocab_size": 250002, "hidden_size": 768,
                                              "num_hidden_layers": 12, "num_attention_heads": 12,
                                              "intermediate_size": 3072, "max_position_embeddings": 514,
                                              "type_vocab_size": 1, "pad_token_id": 1})
    assert usable_positions(config) == 512


def test_a_st_folder_on_disk_beats_a_hub_id_of_the_same_name(hub, st_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(st_dir, tmp_path / "org" / "tiny-st")
    pipe = nlu_lite.load(ST_REPO)  # ./org/tiny-st exists: the folder, no request
    assert hub.count() == 0 and pipe.spec.pooling == "cls"


def test_a_damaged_settings_file_in_a_subfolder_is_caught_and_fetched_again(hub):
    """1_Pooling/config.json is checked against its ETag like any file: an edit (cls -> mean) is never used."""
    entry = ModelSpec(name="tiny_st", task="sentence", dim=32, layers=2, heads=4,
                      sources=(HubSource(repo=ST_REPO, files=("config.json", "tokenizer.json"), optional=HUB_OPTIONAL),))
    folder = artifacts.fetch(entry)
    pooling = folder / "1_Pooling" / "config.json"
    good = pooling.read_bytes()
    pooling.resolve().write_text(json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    assert apply_folder_settings(entry, folder).pooling == "mean"  # what the damage would do, unchecked
    hub.reset_counts()
    again = artifacts.fetch(entry)
    assert (again / "1_Pooling" / "config.json").read_bytes() == good
    assert hub.count("GET", "1_Pooling/config.json") == 1  # fetched again, only that file
    assert apply_folder_settings(entry, again).pooling == "cls"
    [cached] = [e for e in artifacts.cache_entries() if e.kind == "hf" and ST_REPO in e.detail]
    assert artifacts.verify_entry(cached) == []


def test_the_command_line_takes_hub_ids(hub, st_dir, capsys):
    from nlu_lite.cli import main

    assert main(["download", f"hf:{ST_REPO}", "--no-progress"]) == 0
    assert (Path(capsys.readouterr().out.strip().splitlines()[-1]) / "modules.json").is_file()
    hub.reset_counts()
    assert main(["predict", ST_REPO, "the dog runs to the river bank", "--level", "document", "--no-progress"]) == 0
    assert "org_tiny-st_embeddings" in capsys.readouterr().out
    assert hub.count("GET", listener="cdn") == 0  # the weights came from the cache the download filled
