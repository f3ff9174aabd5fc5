"""The families table: one module + one table line is a family; nothing else knows its quirks.

A toy family is declared here, in the test module, exactly as a family module in
``nlu_lite/convert/`` declares one: a config class, a rename of its stored weight names, and a
plan for the shared encoder builder. Registered at run time, its checkpoints load, convert,
tokenize and predict end to end; unregistered, they are "not supported" again. Nothing else in
nlu_lite was told about it.
"""
from __future__ import annotations

import ast
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import nlu_lite
from nlu_lite.convert import families
from nlu_lite.convert.encoder import (
    EncoderConfig,
    EncoderPlan,
    encoder_family,
    encoder_fields,
    encoder_sizes,
)
from nlu_lite.errors import ConversionError, RegistryError

CONVERT = Path(nlu_lite.__file__).parent / "convert"
TOY_BASE = {"vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 128, "max_position_embeddings": 512, "type_vocab_size": 2}


@dataclass(frozen=True)
class ToyConfig(EncoderConfig):
    """BERT's fields; its checkpoints keep every weight under ``toy_encoder.`` and ``blocks.N.``."""

    @classmethod
    def from_dict(cls, data, where="config.json"):
        return cls(**encoder_fields(data, where, model="Toy", base=TOY_BASE, defaults={"type_vocab_size": 2}))


def _toy_rename(stored: str) -> str | None:
    key = stored.removeprefix("toy_encoder.")
    if key.startswith("blocks."):
        key = "encoder.layer." + key.removeprefix("blocks.")
    return key if key.startswith(("embeddings.", "encoder.", "pooler.")) and not key.endswith("_ids") else None


TOY = encoder_family(name="Toy", model_types=("toy-bert",), config_class=ToyConfig, rename=_toy_rename,
                     sizes=encoder_sizes, plan=lambda config: EncoderPlan(model_type="toy-bert", token_types=True),
                     tokenizer_fallback=("vocab.txt",))


def _toy_checkpoint(bert_folder: Path, out: Path) -> Path:
    """The tiny BERT's weights under the toy family's names, config.json saying model_type 'toy-bert'."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(bert_folder, out)
    state = load_file(str(out / "model.safetensors"))
    renamed = {"toy_encoder." + k.replace("encoder.layer.", "blocks."): v for k, v in state.items()}
    (out / "model.safetensors").unlink()
    save_file(renamed, str(out / "model.safetensors"))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "model_type": "toy-bert"}))
    return out


@pytest.fixture()
def toy_registered():
    families.register_family(TOY)
    yield TOY
    families.unregister_family(TOY)


def test_a_family_declared_outside_the_package_works_end_to_end(tiny_bert_dir, tmp_path, isolated_cache,
                                                                toy_registered):
    toy = _toy_checkpoint(tiny_bert_dir, tmp_path / "toy")
    assert "toy-bert" in families.supported_model_types()
    pipe = nlu_lite.load(path=toy)
    assert pipe.spec.architecture == "toy-bert"
    text = ["I love NLP and its many word pieces", "short"]
    ours = pipe.predict(text, output_level="token")
    bert = nlu_lite.load(path=tiny_bert_dir).predict(text, output_level="token")
    # same weights, same graph builder: the same vectors, row for row
    assert ours["token"].tolist() == bert["token"].tolist()
    np.testing.assert_array_equal(nlu_lite.to_matrix(ours), nlu_lite.to_matrix(bert))
    # the registry takes the new architecture too (its check reads the same table)
    spec = nlu_lite.register_model("en.embed.toy_test", path=toy, replace=True)
    assert spec.architecture == "toy-bert"


def test_an_unregistered_family_is_unsupported_again(tiny_bert_dir, tmp_path, isolated_cache):
    toy = _toy_checkpoint(tiny_bert_dir, tmp_path / "toy")
    families.register_family(TOY)
    families.unregister_family(TOY)
    with pytest.raises(ConversionError, match="model_type 'toy-bert' is not supported") as caught:
        nlu_lite.load(path=toy)
    for model_type in ("bert", "roberta", "mpnet", "deberta-v2"):  # the message lists the table's types
        assert repr(model_type) in str(caught.value)


def test_a_model_type_cannot_be_taken_twice_by_accident():
    clash = encoder_family(name="Clash", model_types=("bert",), config_class=ToyConfig, rename=_toy_rename,
                           sizes=encoder_sizes, plan=lambda config: EncoderPlan(model_type="bert", token_types=True))
    with pytest.raises(ValueError, match="already belong to BERT"):
        families.register_family(clash)
    assert families.family_for("bert").name == "BERT"


def test_the_registry_reads_architectures_from_the_table():
    from nlu_lite.registry import parse_model

    entry = {"name": "x", "task": "token", "dim": 8, "layers": 1, "heads": 1, "architecture": "toy-bert",
             "sources": [{"hf": {"repo": "org/x"}}]}
    with pytest.raises(RegistryError, match="toy-bert"):
        parse_model(entry)
    families.register_family(TOY)
    try:
        assert parse_model(entry).architecture == "toy-bert"
    finally:
        families.unregister_family(TOY)


def _family_modules() -> list[Path]:
    return [p for p in sorted(CONVERT.glob("*.py")) if "FAMILY =" in p.read_text(encoding="utf-8")]


def test_every_family_module_is_in_the_table_and_imported_plainly():
    """families.py imports each family module at top level (a broken module is an ImportError, never
    'unsupported'), and every module that declares a FAMILY is in FAMILIES."""
    tree = ast.parse((CONVERT / "families.py").read_text(encoding="utf-8"))
    guarded = [n for t in ast.walk(tree) if isinstance(t, ast.Try) for n in ast.walk(t)
               if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not guarded, "families.py must not catch import errors"
    assert "importlib" not in (CONVERT / "families.py").read_text(encoding="utf-8")
    import importlib

    declared = {p.stem: importlib.import_module(f"nlu_lite.convert.{p.stem}").FAMILY for p in _family_modules()}
    missing = [name for name, family in declared.items() if family not in families.FAMILIES]
    assert not missing, f"family modules not in FAMILIES: {missing}"
    assert len(declared) == len(families.FAMILIES) >= 7


def test_family_modules_import_no_private_names_of_other_modules():
    """A family module uses the shared builders' public names only, never another family's internals."""
    wrong = []
    for path in _family_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                wrong += [f"{path.name}: from .{node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_")]
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in {m.stem for m in _family_modules()}:
                wrong.append(f"{path.name} imports the family module {node.module}")
    assert not wrong, wrong


def test_a_family_cannot_share_another_familys_config_class():
    """family_of matches a config to its family by class: a second family on BertConfig would be BERT."""
    import dataclasses

    from nlu_lite.convert import bert

    twin = dataclasses.replace(bert.FAMILY, name="Twin", model_types=("twin-bert",))
    with pytest.raises(ValueError, match="config class BertConfig is BERT's too"):
        families.register_family(twin)
    assert "twin-bert" not in families.supported_model_types()


def test_registry_entries_take_their_familys_poolings_unless_they_say():
    from nlu_lite.registry import default_registry, parse_model

    assert default_registry().resolve("xx.embed_sentence.qwen3_embedding_0_6b").subtoken_pooling == "last"
    assert default_registry().resolve("en.embed.xlnet").subtoken_pooling == "first"
    entry = {"name": "q", "task": "sentence", "dim": 8, "layers": 1, "heads": 1, "architecture": "qwen3",
             "sources": [{"hf": {"repo": "org/q"}}]}
    assert (parse_model(entry).pooling, parse_model(entry).subtoken_pooling) == ("lasttoken", "last")
    said = parse_model({**entry, "pooling": "mean", "subtoken_pooling": "first"})
    assert (said.pooling, said.subtoken_pooling) == ("mean", "first")


def test_a_plug_in_familys_graph_is_cached_apart_from_the_built_in_one(tiny_bert_dir, tmp_path, isolated_cache):
    """register_family(replace=True) of a built-in model type: the plug-in's conversion is its own cache entry,
    and unregistering it goes back to the built-in's entry (never each other's graph)."""
    import dataclasses

    from nlu_lite.convert import ensure_onnx

    @dataclass(frozen=True)
    class OtherBertConfig(ToyConfig):
        pass

    builtin = ensure_onnx(tiny_bert_dir)
    plugin = dataclasses.replace(TOY, name="PlugBERT", model_types=("bert",), config_class=OtherBertConfig,
                                 rename=families.family_for("bert").rename)
    families.register_family(plugin, replace=True)
    try:
        assert families.family_for("bert") is plugin
        replaced = ensure_onnx(tiny_bert_dir)
        assert replaced.parent != builtin.parent
    finally:
        families.unregister_family(plugin)
    assert families.family_for("bert").name == "BERT" and ensure_onnx(tiny_bert_dir) == builtin
