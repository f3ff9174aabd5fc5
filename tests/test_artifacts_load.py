"""load() end to end against the loopback hub: download, convert, predict; then no request at all."""
from __future__ import annotations

import time

import numpy as np
import pytest
from _hub_server import HubServer

import nlu_lite
from nlu_lite.errors import OfflineError

ALIAS = "en.embed.hub_served_tiny"


@pytest.fixture()
def served(isolated_cache, monkeypatch, tiny_bert_dir):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    with HubServer() as hub:
        hub.add_repo("org/hub-served-tiny", tiny_bert_dir)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        nlu_lite.register_model(ALIAS, repo="org/hub-served-tiny", dim=32, layers=2, heads=4, replace=True)
        yield hub


def test_load_downloads_converts_predicts_and_a_second_load_makes_no_request(served, tiny_bert_dir):
    text = "the quick brown fox jumps over the lazy dog"
    first = nlu_lite.load(ALIAS).predict(text)
    assert served.count("GET") == 3  # config.json, vocab.txt, and the weights from the CDN
    reference = nlu_lite.load(path=tiny_bert_dir).predict(text)  # the same checkpoint, read in place
    np.testing.assert_array_equal(nlu_lite.to_matrix(first), nlu_lite.to_matrix(reference))
    assert list(first["token"]) == text.split()

    served.reset_counts()
    second = nlu_lite.load(ALIAS).predict(text)
    assert served.count() == 0
    np.testing.assert_array_equal(nlu_lite.to_matrix(second), nlu_lite.to_matrix(first))


def test_load_offline_with_an_empty_cache_raises_fast_without_a_request(served):
    started = time.monotonic()
    with pytest.raises(OfflineError) as info:
        nlu_lite.load(ALIAS, offline=True)
    assert time.monotonic() - started < 5
    assert served.count() == 0
    assert f"nlu-lite download {ALIAS}" in str(info.value) and "org/hub-served-tiny" in str(info.value)
