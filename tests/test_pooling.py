import numpy as np
import pytest

from nlu_lite.errors import InputError
from nlu_lite.pooling import SequencePooler, normalize_rows, word_pool
from nlu_lite.windows import owner_window, plan_windows


def _brute_owner(n, windows):
    pos = np.arange(n)[:, None]
    start, end = windows[:, 0][None], windows[:, 1][None]
    margin = np.where((pos >= start) & (pos < end), np.minimum(pos - start, end - 1 - pos), -1)
    return margin.argmax(axis=1)


@pytest.mark.parametrize("n, capacity, overlap", [(5, 510, 128), (510, 510, 128), (511, 510, 128), (1000, 510, 128),
                                                  (3000, 510, 255), (1234, 7, 3), (10, 4, 2), (777, 100, 99)])
def test_windows_cover_everything_and_owner_is_most_central(n, capacity, overlap):
    windows = plan_windows(n, capacity, overlap)
    assert windows[0, 0] == 0 and windows[-1, 1] == n
    assert (windows[:, 1] - windows[:, 0] <= capacity).all()
    assert (windows[1:, 0] <= windows[:-1, 1]).all()  # no gap
    if len(windows) > 1:
        assert (windows[:-1, 1] - windows[1:, 0] >= overlap).all()
    owner = owner_window(n, windows)
    np.testing.assert_array_equal(owner, _brute_owner(n, windows))
    assert ((windows[owner, 0] <= np.arange(n)) & (np.arange(n) < windows[owner, 1])).all()


def test_window_parameters_are_validated():
    with pytest.raises(InputError):
        plan_windows(100, 10, 10)
    with pytest.raises(InputError):
        plan_windows(100, 0, 0)


def test_word_pool_modes_on_hand_built_pieces():
    states = np.arange(12, dtype=np.float32).reshape(6, 2)  # pieces 0..5
    word = np.array([0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(word_pool(states, word, "first"), states[[0, 2, 3]])
    np.testing.assert_array_equal(word_pool(states, word, "last"), states[[1, 2, 5]])
    np.testing.assert_allclose(word_pool(states, word, "mean"), [[1, 2], [4, 5], [8, 9]])
    np.testing.assert_array_equal(word_pool(states, word, "first_last"),
                                  np.hstack([states[[0, 2, 3]], states[[1, 2, 5]]]))
    with pytest.raises(InputError, match="subtoken_pooling"):
        word_pool(states, word, "median")


def test_sequence_pooler_mean_is_masked_mean_and_combines_windows():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(3, 5, 4)).astype(np.float32)
    own = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], bool)
    unit = np.array([0, 0, 1])  # sequences 0 and 1 are two windows of unit 0
    pooler = SequencePooler(2, 4, "mean")
    pooler.add(unit, states, own)
    out = pooler.result()
    expect0 = np.concatenate([states[0][own[0]], states[1][own[1]]]).mean(axis=0)
    np.testing.assert_allclose(out[0], expect0, rtol=1e-6)
    np.testing.assert_allclose(out[1], states[2].mean(axis=0), rtol=1e-6)

    mx = SequencePooler(2, 4, "max")
    mx.add(unit, states, own)
    np.testing.assert_allclose(mx.result()[0], np.concatenate([states[0][own[0]], states[1][own[1]]]).max(axis=0))
    cls = SequencePooler(2, 4, "cls")
    cls.add(unit, states, own)
    np.testing.assert_allclose(cls.result()[0], (states[0, 0] + states[1, 0]) / 2, rtol=1e-6)


def test_sequence_pooler_units_without_sequences_are_nan():
    pooler = SequencePooler(3, 2, "mean")
    pooler.add(np.array([1]), np.ones((1, 2, 2), np.float32), np.ones((1, 2), bool))
    out = pooler.result()
    assert np.isnan(out[0]).all() and np.isnan(out[2]).all() and (out[1] == 1).all()


def test_normalize_rows():
    m = np.array([[3, 4], [0, 0], [np.nan, 1]], np.float32)
    out = normalize_rows(m)
    np.testing.assert_allclose(out[0], [0.6, 0.8])
    assert (out[1] == 0).all() and np.isnan(out[2, 0])
