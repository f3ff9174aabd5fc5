"""Issue 23's questions answered by the real all-MiniLM-L6-v2 on the shipped corpus (360 sentences, nine
polysemous words each in two senses, five sentences per sense): the figures here are documented in
docs/exploring.md."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow

import nlu_lite
from nlu_lite.viz import load_corpus


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture(scope="module")
def pipes(minilm_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        yield nlu_lite.load(path=minilm_dir), nlu_lite.load(path=minilm_dir, precision="int8")


@pytest.fixture(scope="module")
def tokens(pipes, corpus):
    df = pipes[0].predict(corpus.text.tolist(), output_level="token")
    return df.join(corpus[["topic", "keyword", "sense"]].add_prefix("corpus_"), on="origin_index")


def test_senses_find_the_corpus_senses_of_bank_and_most_other_words(tokens):
    from sklearn.metrics import adjusted_rand_score

    scores = {}
    for word in ("apple", "bank", "bat", "cell", "chip", "cookie", "mouse", "python", "virus"):
        found = nlu_lite.senses(tokens, word)
        occ = found.occurrences
        own = occ[occ.corpus_keyword == word]  # the word in its labelled sentences
        scores[word] = adjusted_rand_score(own.corpus_sense, own.sense)
    assert scores["bank"] == 1.0, scores  # money and river apart, every occurrence
    assert sum(s == 1.0 for s in scores.values()) >= 5, scores
    bank = nlu_lite.senses(tokens, "bank")
    named = dict(zip(bank.summary.name, bank.summary.keywords))
    assert any("river" in words for words in named.values()), named


def test_fp32_and_int8_side_by_side_keep_most_neighbours(pipes, corpus):
    texts = corpus.text.tolist()
    fp32, int8 = pipes[0].predict(texts), pipes[1].predict(texts)
    same = nlu_lite.compare(fp32, fp32.copy())
    assert same.overlap == 1.0
    result = nlu_lite.compare(fp32, int8, k=10)
    # documented (docs/exploring.md): overlap@10 0.980, rank correlation 0.999 on a 2-core AMD EPYC
    assert 0.95 <= result.overlap < 1.0 and result.rank_correlation >= 0.99, result
    assert (result.rows.overlap >= 0.5).all()  # no sentence loses most of its neighbourhood


def test_an_axis_between_money_and_river_orders_the_topics(pipes, corpus):
    pipe = pipes[0]
    df = pipe.predict(corpus.text.tolist()).join(corpus[["topic"]], on="origin_index")
    placed = nlu_lite.semantic_axes(df, ("money", "river"), pipe=pipe)
    by_topic = placed.groupby("topic")["money ↔ river"].mean()
    assert by_topic["finance"] < by_topic.drop("finance").min()  # finance nearest the money pole
    assert by_topic["nature"] > by_topic.drop("nature").max()  # nature nearest the river pole


def test_semantic_search_finds_the_finance_sentences(pipes, corpus):
    pipe = pipes[0]
    df = pipe.predict(corpus.text.tolist()).join(corpus[["topic"]], on="origin_index")
    hits = nlu_lite.similar(df, "Where can I get a loan for a house?", k=10, pipe=pipe)
    assert (hits.topic == "finance").mean() >= 0.8, hits[["sentence", "topic"]]
    assert np.all(np.diff(hits.similarity) <= 0)


def test_a_scikit_learn_pipeline_on_minilm_vectors_classifies_the_topics(pipes, corpus, minilm_dir):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    from nlu_lite.sklearn import Embedder, clear_cache

    clf = make_pipeline(Embedder(model=None, path=str(minilm_dir)), LogisticRegression(max_iter=1000))
    scores = cross_val_score(clf, corpus.text.tolist(), corpus.topic.tolist(), cv=3)
    clear_cache()
    assert scores.mean() >= 0.9, scores  # six topics: chance is 1/6
