"""Every tokenizer kind nlu_lite reads (WordPiece, byte-level BPE, Unigram/SentencePiece) gives the
pieces, ids and offsets of transformers' fast tokenizer built from the same ``tokenizer.json``,
framed as its post-processor frames a sequence; words are the same whatever the tokenizer."""
from __future__ import annotations

import json

import numpy as np
import pytest
from _tokenizers import EXTRA_TEXTS, build_bpe_tokenizer, build_unigram_tokenizer
from conftest import build_wordpiece_vocab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_inputs import TEXTS, _valid

from nlu_lite.batching import Batch
from nlu_lite.errors import ConversionError
from nlu_lite.pooling import TokenPooler
from nlu_lite.tokenize import PieceTokenizer, link_pieces, word_splitter

KINDS = ("wordpiece", "bpe", "unigram")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    wordpiece = build_wordpiece_vocab(root / "wordpiece", lowercase=True).parent
    config = {"tokenizer_class": "BertTokenizerFast", "do_lower_case": True, "model_max_length": 512}
    (wordpiece / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return {"wordpiece": wordpiece, "bpe": build_bpe_tokenizer(root / "bpe"),
            "unigram": build_unigram_tokenizer(root / "unigram")}


@pytest.fixture(scope="module")
def pairs(folders):
    from transformers import AutoTokenizer

    return {kind: (PieceTokenizer.from_folder(folder), AutoTokenizer.from_pretrained(str(folder)))
            for kind, folder in folders.items()}


def _check_against_reference(ours: PieceTokenizer, ref, texts: list[str]) -> None:
    pieces = ours.encode(texts)
    prefix, suffix = list(ours.framing.prefix), list(ours.framing.suffix)
    control = set(ref.all_special_ids) - {ref.unk_token_id}
    for t, text in enumerate(texts):
        lo, hi = pieces.text_piece_start[t], pieces.text_piece_start[t + 1]
        assert not set(pieces.ids[lo:hi].tolist()) & control, text  # user text never becomes a control token
        expected = ref(text, return_offsets_mapping=True, split_special_tokens=True)  # text is text (see tokenize)
        if set(expected["input_ids"][len(prefix):len(expected["input_ids"]) - len(suffix)]) & control:
            continue  # a Unigram vocabulary that lists "<s>" as a piece: transformers picks it, we do not
        assert prefix + pieces.ids[lo:hi].tolist() + suffix == expected["input_ids"], text
        body = expected["offset_mapping"][len(prefix):len(expected["offset_mapping"]) - len(suffix)]
        ours_offsets = ours._tok.encode(text, add_special_tokens=False).offsets
        assert ours_offsets == [tuple(o) for o in body], text


@pytest.mark.parametrize("kind", KINDS)
def test_ids_and_offsets_equal_transformers_on_hostile_text(pairs, kind):
    ours, ref = pairs[kind]
    _check_against_reference(ours, ref, EXTRA_TEXTS + ["", " ", "a", "x" * 300, "Hello" * 50])


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_ids_and_offsets_equal_transformers_on_random_unicode(pairs, kind, texts):
    ours, ref = pairs[kind]
    _check_against_reference(ours, ref, [_valid(t) for t in texts])


@pytest.mark.parametrize("kind", KINDS)
def test_framing_comes_from_the_post_processor(pairs, kind):
    ours, ref = pairs[kind]
    framed = ref("a")["input_ids"]
    assert framed[0] == ours.framing.prefix[0] and framed[-1] == ours.framing.suffix[-1]
    assert ours.framing.prefix == (ref.cls_token_id,) and ours.framing.suffix == (ref.sep_token_id,)
    assert ours.pad_id == ref.pad_token_id
    assert ours.unk_id == (ref.unk_token_id if kind != "bpe" else None)  # byte-level BPE has no unknown piece


@pytest.mark.parametrize("kind", KINDS)
def test_special_token_strings_in_text_are_text(pairs, kind):
    ours, _ = pairs[kind]
    text = "[CLS] [SEP] <s> </s> <pad> <mask> <unk> [UNK]"
    ids = ours.encode([text]).ids.tolist()
    specials = {i for i, t in ours._tok.get_added_tokens_decoder().items() if t.special} - {ours.unk_id}
    assert len(specials) >= 4 and ids and not specials & set(ids)


def test_a_template_with_two_prefix_tokens_and_a_missing_post_processor(folders, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer.from_file(str(folders["wordpiece"] / "tokenizer.json"))
    cls, mask, sep = (tok.token_to_id(t) for t in ("[CLS]", "[MASK]", "[SEP]"))
    tok.post_processor = TemplateProcessing(single="[CLS] [MASK] $A [SEP]", special_tokens=[
        ("[CLS]", cls), ("[MASK]", mask), ("[SEP]", sep)])
    assert PieceTokenizer(tok).framing.prefix == (cls, mask)

    bpe = Tokenizer.from_file(str(folders["bpe"] / "tokenizer.json"))
    bpe.post_processor = None
    with pytest.raises(ConversionError, match="post-processor"):
        PieceTokenizer(bpe, source="bpe/tokenizer.json")


def test_words_are_the_same_for_every_tokenizer_and_show_the_text(pairs):
    texts = EXTRA_TEXTS + ["Dr. Smith's naïve café.", "東京 abc"]
    spans = set()
    for ours, _ in pairs.values():
        p = ours.encode(texts)
        spans.add((p.word_begin.tobytes(), p.word_end.tobytes(), p.text_word_start.tobytes()))
        for t, text in enumerate(texts):
            lo, hi = p.text_word_start[t], p.text_word_start[t + 1]
            words = [text[b:e] for b, e in zip(p.word_begin[lo:hi], p.word_end[lo:hi])]
            assert all(w and not w.isspace() for w in words)
            assert np.all(p.word_end[lo:hi - 1] <= p.word_begin[lo + 1:hi])  # in order, disjoint
    assert len(spans) == 1
    p = next(iter(pairs.values()))[0].encode(["Dr. Smith's café, 東京!"])
    text = "Dr. Smith's café, 東京!"
    assert [text[b:e] for b, e in zip(p.word_begin, p.word_end)] == \
        ["Dr", ".", "Smith", "'", "s", "café", ",", "東", "京", "!"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_piece_with_characters_covers_a_word_it_overlaps(pairs, kind):
    ours, _ = pairs[kind]
    texts = EXTRA_TEXTS
    p = ours.encode(texts)
    for t, text in enumerate(texts):
        offsets = ours._tok.encode(text, add_special_tokens=False).offsets
        lo_w, hi_w = p.text_word_start[t], p.text_word_start[t + 1]
        links = {(int(a), int(b)) for a, b in zip(p.link_piece, p.link_word) if lo_w <= b < hi_w}
        expected = {(p.text_piece_start[t] + i, w) for i, (pb, pe) in enumerate(offsets) for w in range(lo_w, hi_w)
                    if pb < pe and pb < p.word_end[w] and pe > p.word_begin[w]}
        assert links == expected


SPANS = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6)), max_size=12).map(
    lambda pairs: sorted((b, b + n) for b, n in pairs))


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.tuples(SPANS, SPANS), max_size=4))
def test_links_are_exactly_the_overlapping_pairs(texts):
    def flat(which):
        spans = [t[which] for t in texts]
        begin = np.array([b for s in spans for b, _ in s], np.int64)
        end = np.array([e for s in spans for _, e in s], np.int64)
        start = np.r_[0, np.cumsum([len(s) for s in spans])].astype(np.int64)
        return begin, end, start

    pb, pe, ps = flat(0)
    wb, we, ws = flat(1)
    piece, word, link_start = link_pieces(pb, pe, ps, wb, we, ws)
    expected = []
    for t in range(len(texts)):
        for w in range(ws[t], ws[t + 1]):
            expected += [(w, p) for p in range(ps[t], ps[t + 1]) if pb[p] < pe[p] and pb[p] < we[w] and pe[p] > wb[w]]
    assert list(zip(word.tolist(), piece.tolist())) == sorted(expected)
    assert link_start.tolist() == [0] + np.cumsum(
        [sum(1 for w, _ in expected if ws[t] <= w < ws[t + 1]) for t in range(len(texts))]).tolist()


def test_a_piece_covering_two_words_counts_for_both_and_an_uncovered_word_is_nan():
    # words 0, 1 covered by piece 0 ("▁Hello," covers "Hello" and ","), word 2 by pieces 1, 2, word 3 by none
    link_piece, link_word = np.array([0, 0, 1, 2]), np.array([0, 1, 2, 2])
    states = np.arange(1, 13, dtype=np.float32).reshape(1, 4, 3)  # [CLS] p0 p1 p2
    batch = Batch(seq=np.array([0]), input_ids=np.zeros((1, 4), np.int64), attention_mask=np.ones((1, 4), np.int64),
                  lengths=np.array([3]), n_prefix=1, n_suffix=0, row=np.zeros(3, np.int64), col=np.arange(1, 4),
                  src=np.arange(3), owned=np.ones(3, bool))
    want = {"first": [states[0, 1], states[0, 1], states[0, 2]], "last": [states[0, 1], states[0, 1], states[0, 3]],
            "mean": [states[0, 1], states[0, 1], (states[0, 2] + states[0, 3]) / 2]}
    for mode, rows in want.items():
        pooler = TokenPooler(link_piece, link_word, 4, 3, 3, mode)
        pooler.add_batch(batch, states[0:1])
        out = pooler.result()
        np.testing.assert_allclose(out[:3], np.array(rows))
        assert np.isnan(out[3]).all()


def test_the_word_splitter_drops_control_characters_and_keeps_marks():
    text = "a\x00b c\u0301 \u0301 d"
    begin, end, start = word_splitter().split([text])
    assert [text[b:e] for b, e in zip(begin, end)] == ["a\x00b", "c\u0301", "\u0301", "d"]
    assert start.tolist() == [0, 4]
