"""Hostile tokenizer files, round three (issue 24): what a tokenizer.json or SentencePiece file costs grows
linearly with it, and a file no real model has is refused before it is read.

Time is compared, never asserted absolutely: twice the input must take less than three times as long (a
quadratic step would take four), best of three runs. Python-side memory (tracemalloc) likewise."""
from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from _tokenizers import build_bpe_tokenizer, build_unigram_tokenizer
from test_spm_tokenizers import _key, _length_field, _varint

from nlu_lite import spm as nlu_spm
from nlu_lite.errors import ConversionError
from nlu_lite.tokenize import MAX_TOKENIZER_JSON_BYTES, PieceTokenizer


def _best(*calls, repeats: int = 3) -> list[float]:
    """Each call's best time, the calls interleaved so a busy spell on the machine slows them alike."""
    best = [np.inf] * len(calls)
    for _ in range(repeats):
        for i, call in enumerate(calls):
            started = time.perf_counter()
            call()
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def _linear(small: float, large: float, slack: float = 0.01) -> bool:
    return large < 3.0 * small + slack


# --- SentencePiece files ------------------------------------------------------------------------------------

def _spm_bytes(n_pieces: int) -> bytes:
    """A unigram SentencePiece ModelProto of ``n_pieces`` pieces, written with the wire format by hand."""
    import struct

    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)] + [
        (f"▁w{i:07d}", -float(i) / n_pieces, 1) for i in range(n_pieces - 3)]
    body = b"".join(_length_field(1, _length_field(1, text.encode()) + _key(2, 5) + struct.pack("<f", score)
                                  + _key(3, 0) + _varint(kind)) for text, score, kind in pieces)
    trainer = _key(3, 0) + _varint(1) + _key(40, 0) + _varint(0)  # model_type UNIGRAM, unk_id 0
    normalizer = _length_field(1, b"identity") + _key(3, 0) + _varint(1) + _key(4, 0) + _varint(1) + \
        _key(5, 0) + _varint(1)
    return body + _length_field(2, trainer) + _length_field(3, normalizer)


def test_reading_a_sentencepiece_file_grows_linearly_in_time_and_memory(tmp_path):
    paths = {}
    for n in (60_000, 120_000):
        paths[n] = tmp_path / f"m{n}.model"
        paths[n].write_bytes(_spm_bytes(n))
    assert len(nlu_spm.read_model(paths[60_000]).pieces) == 60_000
    small, large = _best(*(lambda p=paths[n]: nlu_spm.read_model(p) for n in (60_000, 120_000)))
    assert _linear(small, large), (small, large)
    peaks = []
    for n in (60_000, 120_000):
        tracemalloc.start()
        nlu_spm.read_model(paths[n])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 3.0 * peaks[0], peaks


@pytest.mark.parametrize("declared", [1 << 40, (1 << 63) - 1])
def test_a_sentencepiece_field_declaring_more_bytes_than_the_file_is_refused_at_once(tmp_path, declared):
    path = tmp_path / "spm.model"
    path.write_bytes(_key(1, 2) + _varint(declared) + b"\x00" * 64)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConversionError, match=str(path)):
        nlu_spm.read_model(path)
    seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1.0 and peak < 1 << 20  # nothing of the declared size was allocated


# --- tokenizer.json -----------------------------------------------------------------------------------------

def _wordpiece_folder(folder: Path, n: int) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    for i in range(n):
        vocab[f"w{i:07d}"] = len(vocab)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def test_loading_a_tokenizer_json_grows_linearly_with_its_vocabulary(tmp_path):
    small_folder, large_folder = _wordpiece_folder(tmp_path / "s", 300_000), _wordpiece_folder(tmp_path / "l", 600_000)
    assert PieceTokenizer.from_folder(small_folder).encode(["w0000007 w0000042"], words=False).ids.tolist() == [12, 47]
    small, large = _best(lambda: PieceTokenizer.from_folder(small_folder),
                         lambda: PieceTokenizer.from_folder(large_folder), repeats=5)
    assert _linear(small, large), (small, large)


def test_a_tokenizer_json_larger_than_any_real_one_is_refused_before_it_is_read(tmp_path):
    folder = tmp_path / "huge"
    folder.mkdir()
    with open(folder / "tokenizer.json", "wb") as fh:  # sparse: the size without the disk
        fh.truncate(MAX_TOKENIZER_JSON_BYTES + 1)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConversionError, match="more than any real tokenizer file"):
        PieceTokenizer.from_folder(folder)
    seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1.0 and peak < 1 << 20
    os.truncate(folder / "tokenizer.json", 0)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    root = tmp_path_factory.mktemp("growth")
    return {
        "wordpiece": PieceTokenizer.from_folder(_wordpiece_folder(root / "wp", 5_000)),
        "bpe": PieceTokenizer.from_folder(build_bpe_tokenizer(root / "bpe")),
        "unigram": PieceTokenizer.from_folder(build_unigram_tokenizer(root / "unigram")),
    }


HOSTILE_UNITS = {  # texts that make naive tokenizers or word splitters quadratic
    "one-long-word": "a", "spaces": " ", "combining-marks": "e\u0301", "emoji": "😀", "punctuation": ".,;",
    "mixed-scripts": "aж東1", "newlines": "\n",
}


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
@pytest.mark.parametrize("unit", list(HOSTILE_UNITS), ids=list(HOSTILE_UNITS))
def test_encoding_a_hostile_text_grows_linearly(tokenizers, kind, unit):
    tok = tokenizers[kind]
    n = 40_000 // len(HOSTILE_UNITS[unit])
    texts = {size: HOSTILE_UNITS[unit] * size for size in (n, 2 * n)}
    small, large = _best(lambda: tok.encode([texts[n]]), lambda: tok.encode([texts[2 * n]]))
    assert _linear(small, large, slack=0.02), (small, large)
    once, twice = tok.encode([texts[n]]), tok.encode([texts[2 * n]])
    # it really encoded: twice the text gives no fewer pieces, a visible text some
    assert len(twice.ids) >= len(once.ids) and (len(once.ids) > 0 or not HOSTILE_UNITS[unit].strip())
