"""Several models in one request (NLU's 'ref1 ref2'): one frame, one embedding column per model."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import build_bert_checkpoint

import nlu_lite
from nlu_lite.errors import InputError
from nlu_lite.group import PipelineGroup

DATA = pd.DataFrame({"text": ["the dog runs. The cat sleeps!", "", "Dr. Smith lives in London.", None],
                     "label": list("abcd")}, index=["x", "y", "x", "z"])  # a label used twice


@pytest.fixture(scope="module")
def group(tiny_bert_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        other = build_bert_checkpoint(tmp_path_factory.mktemp("other"), seed=3)
        nlu_lite.register_model("en.embed.group_tok", path=tiny_bert_dir, replace=True)
        nlu_lite.register_model("en.embed_sentence.group_sent", path=other, task="sentence", replace=True)
        yield nlu_lite.load("en.embed.group_tok en.embed_sentence.group_sent")


def test_token_level_holds_each_tokens_sentence_vector(group):
    tok, sent = group.pipelines
    df = group.predict(DATA, keep_columns=["label"])
    assert isinstance(group, PipelineGroup) and list(df.columns[-2:]) == group.embedding_columns
    alone = tok.predict(DATA, keep_columns=["label"])
    flags = [f"{c}_windowed" for c in group.embedding_columns]  # each model's own flags, not one shared column
    assert list(df.columns[-4:-2]) == flags
    pd.testing.assert_frame_equal(df.drop(columns=group.embedding_columns + flags),
                                  alone.drop(columns=[tok.spec.embedding_column, "windowed"]))
    assert (df[flags[0]].to_numpy() == alone["windowed"].to_numpy()).all()
    np.testing.assert_array_equal(nlu_lite.to_matrix(df, tok.spec.embedding_column), nlu_lite.to_matrix(alone))
    sentences = sent.predict(DATA.reset_index(drop=True), "sentence")
    vectors = nlu_lite.to_matrix(df, sent.spec.embedding_column)
    positions = tok.predict(DATA.reset_index(drop=True)).origin_index.tolist()  # rows by position: labels repeat
    assert positions == [0] * 8 + [2] * 7 and len(vectors) == len(positions)
    for vector, position, s in zip(vectors, positions, df.sentence_index):
        want = sentences[(sentences.origin_index == position) & (sentences.sentence_index == s)]
        np.testing.assert_array_equal(vector, nlu_lite.to_matrix(want, sent.spec.embedding_column)[0])
    assert df.origin_index.tolist() == ["x"] * 15


@pytest.mark.parametrize("level", ["sentence", "document"])
def test_pooled_levels_put_both_models_side_by_side(group, level):
    tok, sent = group.pipelines
    df = group.predict(DATA, level)
    for pipe in group.pipelines:
        np.testing.assert_array_equal(nlu_lite.to_matrix(df, pipe.spec.embedding_column),
                                      nlu_lite.to_matrix(pipe.predict(DATA, level)), err_msg=pipe.spec.alias)
    assert df.origin_index.tolist() == pipe.predict(DATA, level).origin_index.tolist()


def test_options_are_checked_for_every_model_and_the_group_pickles(group):
    with pytest.raises(InputError, match="subtoken_pooling"):
        group.predict(DATA, subtoken_pooling="avg")
    with pytest.raises(InputError, match="twice"):
        PipelineGroup([group.pipelines[0], group.pipelines[0]])
    again = pickle.loads(pickle.dumps(group))
    np.testing.assert_array_equal(nlu_lite.to_matrix(again.predict("the dog.", "document"), group.embedding_columns[1]),
                                  nlu_lite.to_matrix(group.predict("the dog.", "document"), group.embedding_columns[1]))


def test_each_models_truncated_and_windowed_flags_are_its_own(group):
    """Issue 24: a group's flags were the first model's. Here the sentence model takes 16 positions, the word
    model 512: a 40-word sentence is cut (truncation=True) or windowed by one model only."""
    import dataclasses

    from nlu_lite.pipeline import Pipeline

    tok, sent = group.pipelines
    short = Pipeline(dataclasses.replace(sent.spec, max_length=16), sent.encoder, sent.tokenizer, recipe=sent.recipe)
    pair = PipelineGroup([tok, short])
    text = " ".join(["the dog runs to the river bank"] * 6)
    t, s = (p.spec.embedding_column for p in (tok, short))
    cut = pair.predict([text, "a cat"], "sentence", truncation=True)
    assert cut[f"{t}_truncated"].tolist() == [False, False] and cut[f"{s}_truncated"].tolist() == [True, False]
    assert "truncated" not in cut.columns and "windowed" not in cut.columns
    whole = pair.predict([text, "a cat"], "sentence")
    assert whole[f"{t}_windowed"].tolist() == [False, False] and whole[f"{s}_windowed"].tolist() == [True, False]
    tokens = pair.predict([text], "token", truncation=True)
    assert not tokens[f"{t}_truncated"].any() and tokens[f"{s}_truncated"].all()  # the token's sentence was cut


def test_a_group_reads_a_generator_once_for_every_model(group):
    """Issue 24, cause 5: the first model consumed the generator and the second saw no rows."""
    texts = ["the dog runs.", "a cat sleeps!"]
    from_list = group.predict(texts, "sentence")
    from_generator = group.predict((t for t in texts), "sentence")
    pd.testing.assert_frame_equal(from_generator, from_list)
    assert len(from_list) == 2


def test_a_group_at_chunk_level(group):
    tok, sent = group.pipelines
    spans = [[(4, 7), (0, 13)]]
    df = group.predict(["the dog runs."], "chunk", chunks=spans)
    for pipe in (tok, sent):
        alone = pipe.predict(["the dog runs."], "chunk", chunks=spans)
        np.testing.assert_array_equal(nlu_lite.to_matrix(df, pipe.spec.embedding_column), nlu_lite.to_matrix(alone))
    assert df["chunk"].tolist() == ["dog", "the dog runs."]


@pytest.mark.parametrize("name", ["embed", "save", "spec"])
def test_what_belongs_to_one_model_says_so_for_a_group(group, name):
    with pytest.raises(InputError, match=f"{name} belongs to one model, and this request loaded several"):
        getattr(group, name)


def test_the_runners_refuse_a_group_clearly(group):
    from nlu_lite.runners import as_pipeline

    with pytest.raises(InputError, match="the Spark and Dask runners run one model; this request names several"):
        as_pipeline(group)
    with pytest.raises(InputError, match="run one model"):
        as_pipeline("en.embed.group_tok en.embed_sentence.group_sent")


def test_a_group_maps_a_chunks_frames_labels_to_its_rows(group):
    """A chunks= frame names rows by index label; the group predicts by position, so the labels are mapped."""
    data = pd.Series(["Hello world", "Hi there"], index=[1, 0])
    chunks = pd.DataFrame({"origin_index": [0], "begin": [0], "end": [2]})
    df = group.predict(data, "chunk", chunks=chunks)
    alone = group.pipelines[0].predict(data, "chunk", chunks=chunks)
    assert df["chunk"].tolist() == alone["chunk"].tolist() == ["Hi"] and df["origin_index"].tolist() == [0]
    with pytest.raises(InputError, match="not a label of the input's rows"):
        group.predict(data, "chunk", chunks=chunks.assign(origin_index=[7]))


def test_a_group_without_embeddings_and_hasattr(group):
    df = group.predict(DATA, "sentence", get_embeddings=False)  # the sentences only: the same for every model
    alone = group.pipelines[1].predict(DATA, "sentence", get_embeddings=False)
    assert not [c for c in df.columns if c.endswith("_embeddings")]
    pd.testing.assert_frame_equal(df.reset_index(drop=True), alone.reset_index(drop=True))
    assert not hasattr(group, "embed") and getattr(group, "spec", None) is None  # an AttributeError too
