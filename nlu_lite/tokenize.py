"""Text -> words and word pieces, with character spans in original-text coordinates, batched in Rust by HF ``tokenizers``.

Two tokenizations of the same text, each with its own job:

- **Words** (the token rows) come from one model-independent splitter, :class:`WordSplitter`:
  BERT's rules (whitespace separates, each punctuation character is a word, each CJK
  character is a word, control characters are dropped), whatever the model. So two models'
  token frames have the same rows and join on ``(origin_index, begin, end)``.
- **Pieces** (the model's input) come from the model's own tokenizer (WordPiece, byte-level
  BPE or Unigram/SentencePiece, from ``tokenizer.json``; or a BERT ``vocab.txt``), framed as
  its post-processor frames a sequence (``[CLS] … [SEP]``, ``<s> … </s>``).

A piece *covers* a word when their character spans overlap; a word's vector is pooled from
the pieces that cover it (:mod:`nlu_lite.pooling`). For WordPiece every piece lies inside one
word. A SentencePiece ``▁Hello,`` covers both ``Hello`` and ``,``, so it counts for both
words; a byte-level ``Ġworld`` covers ``world`` only (the space is in no word). A word no
piece covers (a lone combining mark that an uncased model strips) keeps its row with a NaN
vector. Spans index the *original* text, so ``text[begin:end]`` shows the word as written.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactNotFoundError, ConversionError
from .spm import build_tokenizer, find_model


@dataclass(frozen=True)
class Pieces:
    """The word pieces and words of many texts, concatenated.

    ``ids[text_piece_start[t]:text_piece_start[t+1]]`` are text t's pieces;
    ``word_begin``/``word_end`` ``[text_word_start[t]:text_word_start[t+1]]`` its words' character
    spans. Link i says piece ``link_piece[i]`` covers word ``link_word[i]`` (global numbers;
    sorted by word, then piece); text t's links are ``text_link_start[t]:text_link_start[t+1]``.
    Tokenized without words (sentence and document level), the word and link arrays are empty.
    """

    ids: np.ndarray  # (n_pieces,) int64
    text_piece_start: np.ndarray  # (n_texts + 1,) int64
    word_begin: np.ndarray  # (n_words,) int64
    word_end: np.ndarray  # (n_words,) int64
    text_word_start: np.ndarray  # (n_texts + 1,) int64
    link_piece: np.ndarray  # (n_links,) int64
    link_word: np.ndarray  # (n_links,) int64
    text_link_start: np.ndarray  # (n_texts + 1,) int64

    @property
    def n_words(self) -> int:
        return len(self.word_begin)

    @property
    def n_pieces(self) -> int:
        return len(self.ids)

    def take(self, texts: np.ndarray) -> tuple[Pieces, np.ndarray]:
        """The pieces of texts ``texts[0], texts[1], ...`` (numbers of this object's texts, repeats
        allowed), and for each of their words the number of the word here it copies."""
        piece_src, piece_start = _take_ranges(self.text_piece_start, texts)
        word_src, word_start = _take_ranges(self.text_word_start, texts)
        link_src, link_start = _take_ranges(self.text_link_start, texts)
        text_of_link = np.repeat(np.arange(len(texts)), np.diff(link_start))
        link_piece = self.link_piece[link_src] - self.text_piece_start[texts][text_of_link] + piece_start[:-1][text_of_link]
        link_word = self.link_word[link_src] - self.text_word_start[texts][text_of_link] + word_start[:-1][text_of_link]
        pieces = Pieces(self.ids[piece_src], piece_start, self.word_begin[word_src], self.word_end[word_src],
                        word_start, link_piece, link_word, link_start)
        return pieces, word_src


def _take_ranges(start: np.ndarray, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The element numbers of texts ``texts`` in an array split by ``start``, and the new split."""
    counts = np.diff(start)[texts]
    out_start = np.r_[0, np.cumsum(counts)].astype(np.int64)
    return _ranges(start[texts], counts, out_start), out_start


def _ranges(starts: np.ndarray, counts: np.ndarray, out_start: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])``, without a Python loop."""
    total = int(out_start[-1])
    return np.repeat(starts - out_start[:-1], counts) + np.arange(total, dtype=np.int64)


def _starts(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _flat(encodings: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids, begins, ends and per-text start offsets of a batch of ``tokenizers`` encodings."""
    from itertools import chain

    counts = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
    start = _starts(counts)
    total = int(start[-1])
    ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=total)
    offsets = np.fromiter(chain.from_iterable(chain.from_iterable(e.offsets) for e in encodings), dtype=np.int64,
                          count=2 * total)
    return ids, offsets[0::2], offsets[1::2], start


class WordSplitter:
    """The model-independent words of texts: BERT's pre-tokenizer rules, no vocabulary.

    Whitespace separates words; each punctuation character and each CJK character is a word;
    control and format characters (``\\x00``, zero-width space) are dropped as BERT drops them.
    Case, accents and combining marks are kept (a word is never changed, only found).
    """

    def __init__(self) -> None:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

        tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))  # every word is one "unknown" token
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                    lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tok = tok

    def split(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Word begins, word ends (character offsets in each text) and per-text word starts."""
        _, begins, ends, start = _flat(self._tok.encode_batch(texts, add_special_tokens=False))
        return begins, ends, start


_SPLITTER: WordSplitter | None = None


def word_splitter() -> WordSplitter:
    global _SPLITTER
    if _SPLITTER is None:
        _SPLITTER = WordSplitter()
    return _SPLITTER


def link_pieces(piece_begin: np.ndarray, piece_end: np.ndarray, piece_start: np.ndarray,
                word_begin: np.ndarray, word_end: np.ndarray, word_start: np.ndarray) -> tuple[np.ndarray, ...]:
    """Which pieces cover which words: their character spans overlap (zero-width pieces cover nothing).

    Offsets are per text; texts are laid end to end (with a gap) so one sorted search serves all.
    Returns ``(link_piece, link_word, text_link_start)``, sorted by word then piece.

    >>> [a.tolist() for a in link_pieces(np.array([0, 5, 6]), np.array([5, 6, 9]), np.array([0, 3]),
    ...                                   np.array([0, 5, 6]), np.array([5, 6, 9]), np.array([0, 3]))]
    [[0, 1, 2], [0, 1, 2], [0, 3]]
    """
    n_words = len(word_begin)
    if n_words == 0 or len(piece_begin) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, np.zeros(len(word_start), np.int64)
    piece_text = np.repeat(np.arange(len(piece_start) - 1), np.diff(piece_start))
    word_text = np.repeat(np.arange(len(word_start) - 1), np.diff(word_start))
    span = int(max(piece_end.max(), word_end.max())) + 1
    pb, pe = piece_begin + piece_text * span, piece_end + piece_text * span
    wb, we = word_begin + word_text * span, word_end + word_text * span
    if np.any(pb[1:] < pb[:-1]):  # pieces out of text order: sort them by start (never seen; cheap to allow)
        order = np.argsort(pb, kind="stable")
    else:
        order = None
    sb = pb if order is None else pb[order]
    se = np.maximum.accumulate(pe if order is None else pe[order])  # running max: a valid search key
    lo = np.searchsorted(se, wb, side="right")  # first piece that may end after the word begins
    hi = np.searchsorted(sb, we, side="left")  # pieces that begin before the word ends
    counts = np.maximum(hi - lo, 0)
    link_start = _starts(counts)
    cand = _ranges(lo, counts, link_start)
    word = np.repeat(np.arange(n_words, dtype=np.int64), counts)
    piece = cand if order is None else order[cand]
    keep = (pb[piece] < we[word]) & (pe[piece] > wb[word]) & (pe[piece] > pb[piece])
    piece, word = piece[keep], word[keep]
    if order is not None:  # within a word, pieces in sequence order
        resort = np.lexsort((piece, word))
        piece, word = piece[resort], word[resort]
    links_per_text = np.bincount(word_text[word], minlength=len(word_start) - 1) if len(word) else \
        np.zeros(len(word_start) - 1, np.int64)
    return piece.astype(np.int64), word.astype(np.int64), _starts(links_per_text)


@dataclass(frozen=True)
class Framing:
    """How a model frames a sequence: ``prefix + pieces + suffix``, padded with ``pad_id``.

    BERT: ``([CLS],)``, ``([SEP],)``; RoBERTa, XLM-R, MPNet: ``(<s>,)``, ``(</s>,)``. The prefix
    and suffix count against the model's ``max_length``, and pooling owns them like any other position.
    """

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    pad_id: int

    @property
    def overhead(self) -> int:
        return len(self.prefix) + len(self.suffix)


MAX_TOKENIZER_JSON_BYTES = 512 << 20  # real tokenizer.json files are at most tens of MB
_PAD_TOKENS = ("[PAD]", "<pad>")
_UNREACHABLE = -1e9  # a Unigram score no segmentation picks while any other exists


def _text_only(tokenizer):
    """``tokenizer`` set never to truncate or pad (windows handle long texts) and to read special-token
    strings in the input as ordinary text."""
    tokenizer.no_truncation()
    tokenizer.no_padding()
    tokenizer.encode_special_tokens = True
    return tokenizer


def _without_reachable_specials(tokenizer, data: dict):
    """A Unigram (SentencePiece) model whose vocabulary lists the special tokens as pieces would
    pick ``<s>`` for the text "<s>" (their score, 0, is the best there is), even with special-token
    matching off. SentencePiece itself never matches control symbols; give them a score that no
    segmentation picks, so user text never becomes a control token. ``data``: the tokenizer's JSON."""
    from tokenizers import Tokenizer

    special = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
    vocab = data.get("model", {}).get("vocab") or []
    hits = [entry for entry in vocab if isinstance(entry, list) and entry and entry[0] in special]
    if not hits:
        return tokenizer
    for entry in hits:
        entry[1] = _UNREACHABLE
    return _text_only(Tokenizer.from_str(json.dumps(data)))
_PROBES = ("a", "the", "1", "x y")


MAX_ID_MEMO_PIECES = 100_000  # a vocabulary this large has its largest id remembered by the file's digest


def _remembered_max_id(source: str, compute: Callable[[], int]) -> int:
    """``compute()`` (the largest id: a scan of every entry, 2.7 s for a 2M-word table's tokenizer), remembered
    under the cache by the tokenizer file's sha256 when the file is large; small files are scanned each time."""
    import os

    from .cache import atomic_path, default_memo, file_digest, read_json_object

    path = Path(source)
    if not path.is_file() or path.stat().st_size < MAX_ID_MEMO_PIECES * 10:
        return compute()
    memo = default_memo() / f"max-id-{file_digest(path)}.json"
    record = read_json_object(memo) or {}
    if isinstance(record.get("max_id"), int):
        return record["max_id"]
    value = compute()
    try:
        os.makedirs(memo.parent, exist_ok=True)
        with atomic_path(memo) as tmp:
            tmp.write_text(json.dumps({"max_id": value, "source": str(path)}), encoding="utf-8")
    except OSError:  # a read-only cache: computed again next time
        pass
    return value


class PieceTokenizer:
    """A model's own tokenizer (``tokenizers.Tokenizer``) that never truncates or pads (windows
    handle long texts), with the model's framing read from its post-processor.

    Text is text: a user's ``"[SEP]"`` or ``"<s>"`` is tokenized like any other characters
    (``[``, ``sep``, ``]``, as Spark NLP does), never turned into the control token, so input
    cannot change the structure of the model's sequence.
    """

    def __init__(self, tokenizer, *, source: str = "the tokenizer", bare: bool = False) -> None:  # a tokenizers.Tokenizer
        self.bare = bare  # no special tokens around a text is the model's framing (a decoder), not a damaged file
        _text_only(tokenizer)
        unigram = type(tokenizer.model).__name__ == "Unigram"
        data = json.loads(tokenizer.to_str()) if unigram else None  # parsed once: a Unigram's unk id lives only there
        self._tok = _without_reachable_specials(tokenizer, data) if unigram else tokenizer
        self.source = source
        self.framing = self._framing()
        self.unk_id = self._unk_id(data)

    def _framing(self) -> Framing:
        """``prefix``/``suffix``: the special tokens the post-processor puts around one sequence."""
        for probe in _PROBES:
            enc = self._tok.encode(probe, add_special_tokens=True)
            body = [i for i, special in enumerate(enc.special_tokens_mask) if not special]
            if body:
                prefix, suffix = tuple(enc.ids[:body[0]]), tuple(enc.ids[body[-1] + 1:])
                break
        else:
            raise ConversionError(f"{self.source} turns every probe text into special tokens only; it is damaged: "
                                  "download the model again")
        if not prefix and not suffix and self.bare:
            return Framing((), (), self._pad_id())
        if not prefix and not suffix:
            cls, sep = self._tok.token_to_id("[CLS]"), self._tok.token_to_id("[SEP]")
            if cls is None or sep is None:
                raise ConversionError(
                    f"{self.source} has no post-processor that adds the model's special tokens, so nlu_lite cannot "
                    "tell how the model frames a sequence; use the model's own tokenizer.json (with its "
                    "post_processor) or download the model again"
                )
            prefix, suffix = (cls,), (sep,)  # a BERT vocabulary without a post-processor: BERT's framing
        return Framing(prefix, suffix, self._pad_id())

    def _pad_id(self) -> int:
        """The padding id: any id works under the attention mask, the model's own when it has one."""
        padding = self._tok.padding
        if padding and isinstance(padding.get("pad_id"), int):
            return padding["pad_id"]
        for token in _PAD_TOKENS:
            token_id = self._tok.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    def _unk_id(self, data: dict | None) -> int | None:
        """The id of the model's unknown piece (``None`` for byte-level BPE, which has none);
        ``data``: a Unigram tokenizer's JSON, where its ``unk_id`` is."""
        token = getattr(self._tok.model, "unk_token", None)
        if isinstance(token, str):
            return self._tok.token_to_id(token)
        if data is not None:
            unk = data.get("model", {}).get("unk_id")
            return unk if isinstance(unk, int) else None
        return None

    @property
    def cls_id(self) -> int:
        """The first framing token (``[CLS]``, ``<s>``)."""
        return self.framing.prefix[0] if self.framing.prefix else self.framing.pad_id

    @property
    def pad_id(self) -> int:
        return self.framing.pad_id

    @property
    def vocabulary(self) -> list[str]:
        """Piece strings by id (added tokens included); built on first use."""
        if getattr(self, "_vocabulary", None) is None:
            table = [""] * max(self.vocab_size, self.max_id + 1)  # ids may leave gaps (a static table's casings)
            for piece, piece_id in self._tok.get_vocab(with_added_tokens=True).items():
                if 0 <= piece_id < len(table):
                    table[piece_id] = piece
            self._vocabulary = table
        return self._vocabulary

    @property
    def vocab_size(self) -> int:
        """Entries, added tokens included (the ids are below it unless the file leaves gaps: see :attr:`max_id`)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def max_id(self) -> int:
        """The largest id any piece has (``-1`` for an empty vocabulary): what the embedding table must cover."""
        if getattr(self, "_max_id", None) is None:
            self._max_id = _remembered_max_id(self.source, lambda: max(
                self._tok.get_vocab(with_added_tokens=True).values(), default=-1))
        return self._max_id

    def piece_of(self, piece_id: int) -> str | None:
        """The piece with id ``piece_id`` (``None`` when none has it)."""
        return self._tok.id_to_token(piece_id)

    @classmethod
    def from_folder(cls, folder: str | Path, *, lowercase: bool = True, bare: bool = False) -> PieceTokenizer:
        """``tokenizer.json`` when the folder has one (any model: WordPiece, BPE, Unigram), else a
        SentencePiece model (``spm.model``, ``spiece.model``, ``sentencepiece.bpe.model``: :mod:`nlu_lite.spm`),
        else a BERT WordPiece built from ``vocab.txt`` (``lowercase`` applies only to that case). ``bare``: a
        ``tokenizer.json`` that adds no special tokens frames nothing (a decoder's), instead of being an error.

        A file that cannot be read as a tokenizer is a :class:`ConversionError` naming it.
        """
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if path.is_file():
            size = path.stat().st_size
            if size > MAX_TOKENIZER_JSON_BYTES:  # refused before parsing, which takes several times it
                raise ConversionError(
                    f"{path} has {size:,} bytes, more than any real tokenizer file "
                    f"({MAX_TOKENIZER_JSON_BYTES:,} allowed; real ones are at most tens of MB): the file is damaged "
                    "or hostile; download the model again")
            try:
                tokenizer = Tokenizer.from_file(str(path))
            except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for every parse error
                raise ConversionError(
                    f"{path} is not a tokenizer file ({exc}); download the model again, or delete it to "
                    "fall back to vocab.txt"
                ) from None
            return cls(tokenizer, source=str(path), bare=bare)
        spm_model = find_model(folder)  # DeBERTa-v3, ALBERT, XLM-R repos that ship only SentencePiece
        if spm_model is not None:
            return cls(build_tokenizer(folder, spm_model), source=str(spm_model))
        vocab = folder / "vocab.txt"
        if not vocab.is_file():
            raise ArtifactNotFoundError(
                f"{folder} has no tokenizer.json, SentencePiece model (spm.model, spiece.model, "
                "sentencepiece.bpe.model) or vocab.txt; a model folder needs its tokenizer"
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

    def encode(self, texts: list[str], *, words: bool = True) -> Pieces:
        """Tokenize ``texts`` in one Rust call, no special tokens added; with ``words``, also split
        them into words (:class:`WordSplitter`) and link each word to the pieces that cover it."""
        try:
            encoded = self._tok.encode_batch(texts, add_special_tokens=False)
        except BaseException as exc:  # a Rust panic (pyo3's PanicException) is a BaseException only
            if type(exc).__name__ != "PanicException":
                raise
            raise ConversionError(f"{self.source} failed inside the tokenizers library ({str(exc)[:120]}): a rule of "
                                  "this tokenizer file (a Split pattern that backtracks without end, say) cannot run "
                                  "on this text. The file is damaged or hostile; use the model's own tokenizer.json") \
                from None
        ids, begins, ends, piece_start = _flat(encoded)
        if not words:
            empty, zeros = np.empty(0, np.int64), np.zeros(len(texts) + 1, np.int64)
            return Pieces(ids, piece_start, empty, empty, zeros, empty, empty, zeros)
        word_begin, word_end, word_start = word_splitter().split(texts)
        link_piece, link_word, link_start = link_pieces(begins, ends, piece_start, word_begin, word_end, word_start)
        return Pieces(ids, piece_start, word_begin, word_end, word_start, link_piece, link_word, link_start)


WordPieceTokenizer = PieceTokenizer  # the name before tokenizers other than WordPiece were read
