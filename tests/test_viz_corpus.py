"""The shipped topics corpus: its labels hold, and the generator script reproduces it byte for byte."""
from __future__ import annotations

import re
import runpy
from importlib import resources

from _viz_support import REPO

from nlu_lite.viz import load_corpus


def test_corpus_shape_and_labels():
    corpus = load_corpus()
    assert corpus.columns.tolist() == ["text", "topic", "keyword", "sense"]
    assert len(corpus) == 360 and corpus.text.is_unique
    assert sorted(corpus.topic.unique()) == ["cooking", "finance", "health", "nature", "sports", "technology"]
    words = corpus.text.str.lower().map(lambda t: set(re.findall(r"[a-z]+", t)))
    keywords = set(corpus.keyword) - {""}
    assert keywords == {"bank", "bat", "mouse", "python", "apple", "chip", "virus", "cookie", "cell"}
    for keyword, sentence_words in zip(corpus.keyword, words):
        if keyword:
            assert keyword in sentence_words
        else:
            assert not sentence_words & keywords  # generic sentences never use a polysemous word
    senses = corpus[corpus.keyword != ""].groupby("keyword").sense.nunique()
    assert (senses == 2).all()
    bank = corpus[corpus.keyword == "bank"]
    assert set(zip(bank.sense, bank.topic)) == {("money", "finance"), ("river", "nature")}


def test_generator_reproduces_the_shipped_file():
    script = runpy.run_path(str(REPO / "scripts" / "make_topics_corpus.py"))
    shipped = resources.files("nlu_lite").joinpath("data", "topics.csv").read_text(encoding="utf-8")
    assert script["render"]() == shipped
