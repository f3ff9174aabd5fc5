"""NLU's predict() parameters run as written, with NLU's meaning (nlu/pipe/pipeline.py, predict_helper.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nlu_lite
from nlu_lite.errors import InputError


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe


def test_nlus_documented_call_runs_unchanged(pipe):
    df = pipe.predict("I love NLP running", output_level="", positions=True, metadata=True,
                      keep_stranger_features=True, drop_irrelevant_cols=False, multithread=True, get_embeddings=True)
    assert df.token.tolist() == ["I", "love", "NLP", "running"]
    assert {"token_begin", "token_end"} <= set(df.columns) and "begin" not in df.columns
    text = "I love NLP running"
    assert [text[b:e + 1] for b, e in zip(df.token_begin, df.token_end)] == df.token.tolist()  # NLU's inclusive end


def test_metadata_are_each_tokens_pieces(pipe):
    df = pipe.predict("the runner played ☃", metadata=True)
    vocab = pipe.tokenizer.vocabulary
    for pieces, ids, count, oov in zip(df.token_pieces, df.token_piece_ids, df.token_n_pieces, df.token_is_oov):
        assert [vocab[i] for i in ids] == pieces and len(pieces) == count
        assert oov == ("[UNK]" in pieces)
    assert df.token_is_oov.tolist()[-1]  # the snowman is not in the tiny vocabulary
    assert sum(df.token_n_pieces) == len(pipe.tokenizer.encode(["the runner played ☃"]).ids)
    sentences = pipe.predict(["the runner played. ☃ ☃", ""], output_level="sentence", metadata=True)
    assert sentences.sentence_n_pieces.tolist()[1:] == [2, 0] and sentences.sentence_n_oov.tolist()[1:] == [2, 0]


def test_positions_false_and_drop_irrelevant_cols_remove_columns(pipe):
    df = pipe.predict("I love NLP", positions=False, drop_irrelevant_cols=True)
    assert not {"begin", "end", "sentence"} & set(df.columns)
    assert list(df.columns) == list(pipe.output_columns(positions=False, drop_irrelevant_cols=True))


def test_get_embeddings_false_runs_no_model(pipe, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(pipe.encoder, "run", refuse)
    df = pipe.predict(["I love NLP. Yes!"], output_level="sentence", get_embeddings=False)
    assert df.sentence.tolist() == ["I love NLP.", "Yes!"] and not any(c.endswith("_embeddings") for c in df.columns)


def test_keep_stranger_features_is_keep_columns(pipe):
    data = pd.DataFrame({"text": ["I love NLP"], "label": ["x"]})
    kept = pipe.predict(data, keep_stranger_features=True)
    assert kept.label.tolist() == ["x"] * 3
    assert "label" not in pipe.predict(data, keep_stranger_features=False).columns
    with pytest.raises(InputError, match="keep_stranger_features"):
        pipe.predict(data, keep_stranger_features=True, keep_columns=False)


@pytest.mark.parametrize("name", ["positions", "metadata", "keep_stranger_features", "drop_irrelevant_cols",
                                  "get_embeddings", "multithread"])
def test_nlu_parameters_take_booleans_only(pipe, name):
    with pytest.raises(InputError, match=name):
        pipe.predict("x", **{name: "yes"})


def test_output_level_empty_string_is_inferred(pipe):
    assert pipe.resolve_options("").output_level == "token"
    np.testing.assert_array_equal(nlu_lite.to_matrix(pipe.predict("I love NLP", output_level="")),
                                  nlu_lite.to_matrix(pipe.predict("I love NLP")))


def test_engines_refuse_what_their_schemas_cannot_hold(pipe):
    from nlu_lite.runners import check_runner_options

    for options in ({"metadata": True}, {"get_embeddings": False}):
        with pytest.raises(InputError, match="predict\\(\\)'s alone"):
            check_runner_options(pipe, "token", options)
    assert check_runner_options(pipe, "token", {"positions": True}) == "token"


def test_print_components_filters_as_nlu(capsys, isolated_cache):
    nlu_lite.print_components(lang="en", action="embed_sentence")
    out = capsys.readouterr().out.splitlines()[1:]
    assert out and all(line.split()[0].startswith("en.embed_sentence.") for line in out)
    nlu_lite.print_components(action="embed")
    out = capsys.readouterr().out.splitlines()[1:]
    assert out and all(line.split()[1] == "token" for line in out)
    nlu_lite.print_components("all", "all")  # NLU raises a KeyError here; every component
    assert len(capsys.readouterr().out.splitlines()) == len(nlu_lite.list_models()) + 1
    nlu_lite.print_components(lang="de")
    assert "no components for lang='de'" in capsys.readouterr().out


def test_print_info_lists_the_models_defaults(pipe, capsys):
    pipe.print_info()
    out = capsys.readouterr().out
    assert "subtoken_pooling='first'" in out and "output_level='token'" in out and "precision='fp32'" in out
    from nlu_lite.options import DEFAULTS

    for name in DEFAULTS:
        assert f"    {name}=" in out
