"""Word pieces with word spans in original-text coordinates, batched in Rust by HF ``tokenizers``.

A "word" is what BERT's pre-tokenizer makes of the text: whitespace-separated, with each
punctuation character on its own (``"Dr."`` is ``Dr`` and ``.``), and each CJK character a
word. Its span ``(begin, end)`` indexes the *original* text, so ``text[begin:end]`` shows the
word as written (case and accents kept) even for uncased models.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactNotFoundError, ConversionError


@dataclass(frozen=True)
class Pieces:
    """The word pieces of many texts, concatenated.

    ``ids[i]`` is piece i's vocabulary id, ``word[i]`` its word's global number;
    ``text_piece_start[t]:text_piece_start[t+1]`` are text t's pieces and
    ``text_word_start[t]:text_word_start[t+1]`` its words, whose character spans in text t are
    ``word_begin``/``word_end``.
    """

    ids: np.ndarray  # (n_pieces,) int64
    word: np.ndarray  # (n_pieces,) int64, global word number
    text_piece_start: np.ndarray  # (n_texts + 1,) int64
    word_begin: np.ndarray  # (n_words,) int64
    word_end: np.ndarray  # (n_words,) int64
    text_word_start: np.ndarray  # (n_texts + 1,) int64

    @property
    def n_words(self) -> int:
        return len(self.word_begin)

    def take(self, texts: np.ndarray) -> tuple[Pieces, np.ndarray]:
        """The pieces of texts ``texts[0], texts[1], ...`` (numbers of this object's texts, repeats
        allowed), and for each of their words the number of the word here it copies."""
        piece_counts = np.diff(self.text_piece_start)[texts]
        word_counts = np.diff(self.text_word_start)[texts]
        piece_start = np.r_[0, np.cumsum(piece_counts)].astype(np.int64)
        word_start = np.r_[0, np.cumsum(word_counts)].astype(np.int64)
        piece_src = _ranges(self.text_piece_start[texts], piece_counts, piece_start)
        word_src = _ranges(self.text_word_start[texts], word_counts, word_start)
        text_of_piece = np.repeat(np.arange(len(texts)), piece_counts)
        local_word = self.word[piece_src] - self.text_word_start[texts][text_of_piece]
        pieces = Pieces(self.ids[piece_src], word_start[:-1][text_of_piece] + local_word, piece_start,
                        self.word_begin[word_src], self.word_end[word_src], word_start)
        return pieces, word_src


def _ranges(starts: np.ndarray, counts: np.ndarray, out_start: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])``, without a Python loop."""
    total = int(out_start[-1])
    return np.repeat(starts - out_start[:-1], counts) + np.arange(total, dtype=np.int64)


@dataclass(frozen=True)
class Framing:
    """How a model frames a sequence: ``prefix + pieces + suffix``, padded with ``pad_id``.

    BERT: ``([CLS],)``, ``([SEP],)``. The prefix and suffix count against the model's
    ``max_length``, and pooling owns them like any other position.
    """

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    pad_id: int

    @property
    def overhead(self) -> int:
        return len(self.prefix) + len(self.suffix)


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer that never truncates or pads (windows handle long texts).

    Text is text: a user's ``"[SEP]"`` or ``"[CLS]"`` is tokenized like any other characters
    (``[``, ``sep``, ``]``, as Spark NLP does), never turned into the control token, so input
    cannot change the structure of the model's sequence.
    """

    def __init__(self, tokenizer, *, source: str = "the tokenizer") -> None:  # a tokenizers.Tokenizer
        tokenizer.no_truncation()
        tokenizer.no_padding()
        tokenizer.encode_special_tokens = True  # special-token strings in the input are ordinary text
        self._tok = tokenizer
        self.source = source
        self.cls_id = self._special("[CLS]")
        self.sep_id = self._special("[SEP]")
        self.pad_id = self._special("[PAD]")
        self.unk_id = self._tok.token_to_id("[UNK]")
        self.framing = Framing((self.cls_id,), (self.sep_id,), self.pad_id)

    def _special(self, token: str) -> int:
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise ConversionError(
                f"{self.source} has no {token} token, which a BERT vocabulary has; this is not a BERT "
                "tokenizer, or the file is damaged: download the model again"
            )
        return token_id

    @property
    def vocabulary(self) -> list[str]:
        """Piece strings by id (added tokens included); built on first use."""
        if getattr(self, "_vocabulary", None) is None:
            table = [""] * self.vocab_size
            for piece, piece_id in self._tok.get_vocab(with_added_tokens=True).items():
                if piece_id < len(table):
                    table[piece_id] = piece
            self._vocabulary = table
        return self._vocabulary

    @property
    def vocab_size(self) -> int:
        """Entries, added tokens included: the ids this tokenizer can produce are below it."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_folder(cls, folder: str | Path, *, lowercase: bool) -> WordPieceTokenizer:
        """``tokenizer.json`` when the folder has one, else a BERT WordPiece built from ``vocab.txt``.

        A file that cannot be read as a tokenizer is a :class:`ConversionError` naming it.
        """
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if path.is_file():
            try:
                tokenizer = Tokenizer.from_file(str(path))
            except Exception as exc:  # tokenizers raises a bare Exception for every parse error
                raise ConversionError(
                    f"{path} is not a tokenizer file ({exc}); download the model again, or delete it to "
                    "fall back to vocab.txt"
                ) from None
            return cls(tokenizer, source=str(path))
        vocab = folder / "vocab.txt"
        if not vocab.is_file():
            raise ArtifactNotFoundError(
                f"{folder} has neither tokenizer.json nor vocab.txt; a BERT model folder needs one of them"
            )
        try:
            lines = vocab.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise ConversionError(f"{vocab} is not UTF-8 text ({exc}); download the model again") from None
        if not any(line.strip() for line in lines):
            raise ConversionError(f"{vocab} is empty; download the model again")
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if t not in set(lines)]
        if missing:
            raise ConversionError(f"{vocab} has no {', '.join(missing)} token(s), which a BERT vocabulary has; this "
                                  "is not a BERT vocabulary, or the file is damaged: download the model again")
        # BertWordPieceTokenizer wraps a Tokenizer; strip_accents=None follows lowercase, as BERT does
        wrapper = BertWordPieceTokenizer(str(vocab), lowercase=lowercase, strip_accents=None if lowercase else False)
        return cls(wrapper._tokenizer, source=str(vocab))

    def encode(self, texts: list[str]) -> Pieces:
        """Tokenize ``texts`` in one Rust call; no special tokens added."""
        encodings = self._tok.encode_batch(texts, add_special_tokens=False)
        n = len(encodings)
        piece_counts = np.fromiter(map(len, encodings), dtype=np.int64, count=n)
        text_piece_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(piece_counts, out=text_piece_start[1:])
        total = int(text_piece_start[-1])
        ids = np.fromiter(_chain(e.ids for e in encodings), dtype=np.int64, count=total)
        local_word = np.fromiter(_chain(e.word_ids for e in encodings), dtype=np.int64, count=total)
        offsets = np.fromiter(_chain(_chain(e.offsets) for e in encodings), dtype=np.int64, count=2 * total)
        begins, ends = offsets[0::2], offsets[1::2]

        # global word number: words are numbered per text from 0, in order; a new word starts
        # where the local number changes or a new text starts
        text_of_piece = np.repeat(np.arange(n), piece_counts)
        starts_word = np.ones(total, dtype=bool)
        if total:
            starts_word[1:] = (local_word[1:] != local_word[:-1]) | (text_of_piece[1:] != text_of_piece[:-1])
        word = np.cumsum(starts_word) - 1
        first_piece = np.flatnonzero(starts_word)
        n_words = len(first_piece)
        word_begin = begins[first_piece]
        word_end = np.maximum.reduceat(ends, first_piece) if n_words else np.empty(0, dtype=np.int64)
        words_per_text = np.bincount(text_of_piece[first_piece], minlength=n) if n_words else np.zeros(n, np.int64)
        text_word_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(words_per_text, out=text_word_start[1:])
        return Pieces(ids, word, text_piece_start, word_begin, word_end, text_word_start)


def _chain(iterables):
    from itertools import chain

    return chain.from_iterable(iterables)
