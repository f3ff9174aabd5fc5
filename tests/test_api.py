import subprocess
import sys

import numpy as np
import pytest

import nlu_lite
from nlu_lite.errors import ArtifactNotFoundError, InputError, UnknownModelError
from nlu_lite.registry import default_registry


def test_import_is_light():
    code = ("import sys, nlu_lite; heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'pandas', "
            "'tokenizers', 'plotly', 'sklearn', 'ipywidgets', 'huggingface_hub') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_models_is_the_registry(isolated_cache):
    table = nlu_lite.list_models()
    assert len(table) == len(default_registry())
    assert {"alias", "dim", "layers", "size_mb", "license", "source", "cached"} <= set(table.columns)
    row = table.set_index("alias").loc["en.embed.bert.small_L4_512"]
    assert (row.dim, row.layers, row.license) == (512, 4, "Apache-2.0")
    assert row.source == "hf:google/bert_uncased_L-4_H-512_A-8"
    assert not table.cached.any()  # an empty cache
    assert set(nlu_lite.list_models(task="sentence").task) == {"sentence"}


def test_print_components_lists_every_alias(isolated_cache, capsys):
    nlu_lite.print_components()
    out = capsys.readouterr().out
    for spec in default_registry():
        assert spec.alias in out


def test_load_unknown_alias_suggests(isolated_cache):
    with pytest.raises(UnknownModelError, match="Did you mean: en.embed.bert.small_L4_512"):
        nlu_lite.load("en.embed.bert.small_L4_51")


def test_load_rejects_bad_arguments(tmp_path, isolated_cache):
    with pytest.raises(InputError, match="precision"):
        nlu_lite.load("bert", precision="fp16")
    with pytest.raises(InputError, match="needs an alias"):
        nlu_lite.load()
    with pytest.raises(ArtifactNotFoundError, match="config.json"):
        nlu_lite.load(path=tmp_path)


def test_register_local_model_and_load_by_alias_or_path(tiny_bert_dir, isolated_cache):
    spec = nlu_lite.register_model("en.embed.my_tiny", path=tiny_bert_dir, replace=True)
    assert (spec.dim, spec.layers, spec.heads) == (32, 2, 4)
    by_alias = nlu_lite.load("embed.my_tiny")  # the en. prefix is optional for registered models too
    by_path = nlu_lite.load(str(tiny_bert_dir))
    a = by_alias.predict("the dog runs")
    b = by_path.predict("the dog runs")
    assert "en_embed_my_tiny_embeddings" in a.columns
    np.testing.assert_array_equal(nlu_lite.to_matrix(a), nlu_lite.to_matrix(b))
    with pytest.raises(InputError):
        nlu_lite.register_model("en.embed.x", repo="a/b")  # dims are required for a repo
    hub = nlu_lite.register_model("en.embed.remote_x", repo="org/remote-x", dim=8, layers=1, heads=2, replace=True)
    assert hub.sources[0].repo == "org/remote-x" and nlu_lite.list_models().alias.eq("en.embed.remote_x").any()


def test_explore_a_pipelines_frame(tiny_bert_dir, isolated_cache):
    pipe = nlu_lite.load(path=tiny_bert_dir)
    texts = ["The dog runs to the river bank.", "The bank raised money.", "Paris is a city."]
    explorer = nlu_lite.explore(pipe.predict(texts, output_level="sentence", batch_size=2), pipe=pipe,
                                color="origin_index")
    explorer.wait()
    figure = explorer.figure.to_dict()
    from _viz_support import decode

    rows = sorted(int(r) for trace in figure["data"] for r in decode(trace["customdata"]))  # int32, sent binary
    assert rows == [0, 1, 2]  # one point per sentence, each frame row once
    assert len(figure["data"]) == 3  # coloured by origin row: one trace each
    with pytest.raises(TypeError):
        nlu_lite.explore(pipe.predict(texts), not_an_option=1)


def test_streaming_functions_match_predict(tiny_bert_dir, isolated_cache, tmp_path):
    pipe = nlu_lite.load(path=tiny_bert_dir)
    texts = [f"the dog number {i} runs to the bank." for i in range(7)]
    whole = pipe.predict(texts, output_level="sentence")
    parts = list(nlu_lite.predict_iter(pipe, iter(texts), output_level="sentence", chunk_size=3))
    assert [len(p) for p in parts] == [3, 3, 1]
    np.testing.assert_array_equal(np.vstack([nlu_lite.to_matrix(p) for p in parts]), nlu_lite.to_matrix(whole))
    path = nlu_lite.predict_to_parquet(pipe, texts, tmp_path / "out.parquet", output_level="sentence", chunk_size=2)
    back = nlu_lite.read_parquet(path)
    assert back.sentence.tolist() == whole.sentence.tolist()
    np.testing.assert_array_equal(nlu_lite.to_matrix(back), nlu_lite.to_matrix(whole))


def test_list_models_and_print_components_show_architecture_and_language(isolated_cache, capsys):
    table = nlu_lite.list_models().set_index("alias")
    assert {"architecture", "language"} <= set(table.columns)
    assert (table.loc["xx.embed.xlm.base", "architecture"], table.loc["xx.embed.xlm.base", "language"]) == (
        "xlm-roberta", "xx")
    assert (table.loc["en.embed.bert.small_L4_512", "architecture"],
            table.loc["en.embed.bert.small_L4_512", "language"]) == ("bert", "en")
    nlu_lite.print_components(lang="xx")
    lines = capsys.readouterr().out.splitlines()
    assert "architecture" in lines[0] and "lang" in lines[0]
    shown = {line.split()[0] for line in lines[1:]}
    assert shown == {spec.alias for spec in default_registry() if spec.language == "xx"}
    assert "xx.embed_sentence.multilingual_e5_small" in shown
    assert any("xlm-roberta" in line and " xx " in line for line in lines[1:])


def test_register_model_reads_a_folders_task_from_its_files(tiny_bert_dir, isolated_cache, tmp_path):
    """No modules.json: a token model, as before; the defaults task/pooling/normalize come from the folder."""
    spec = nlu_lite.register_model("en.embed.my_plain", path=tiny_bert_dir, replace=True)
    assert (spec.task, spec.pooling, spec.normalize, spec.max_length, spec.architecture) == (
        "token", "mean", False, 512, "bert")
    chosen = nlu_lite.register_model("en.embed_sentence.my_plain", path=tiny_bert_dir, task="sentence",
                                     pooling="cls", normalize=True, replace=True)
    assert (chosen.task, chosen.pooling, chosen.normalize) == ("sentence", "cls", True)
