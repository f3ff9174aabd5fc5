"""A SentencePiece model file (``spm.model``, ``spiece.model``, ``sentencepiece.bpe.model``) -> a
``tokenizers.Tokenizer``, built as transformers' slow->fast converter builds it for the model's family.

Hub repos of DeBERTa-v3 ship only ``spm.model``, and older ALBERT or XLM-R fine-tunes only their
SentencePiece file, no ``tokenizer.json``. transformers turns such a file into a fast tokenizer with
one converter per family (``convert_slow_tokenizer.py``); this module does the same without
``sentencepiece``, protobuf classes or transformers at runtime:

- :func:`read_model` reads the file's protobuf (``ModelProto``) with a small wire-format reader:
  the pieces (text, score, type), ``trainer_spec`` (model type, unknown id, byte fallback) and
  ``normalizer_spec`` (the precompiled character map and the whitespace flags).
- :func:`build_tokenizer` assembles the family's normalizer, ``Metaspace`` pre-tokenizer, Unigram
  model (scores and unknown id), decoder and ``[CLS] $A [SEP]`` (or ``<s> $A </s>``) post-processor,
  with the options and special tokens of ``tokenizer_config.json`` / ``special_tokens_map.json``.

============  ======================  =====================================================
family        transformers converter  what differs from the plain SentencePiece recipe
============  ======================  =====================================================
deberta-v2    DebertaV2Converter      ``do_lower_case``; ``split_by_punct`` isolates punctuation
albert        AlbertConverter         quotes, accents (``keep_accents``), ``do_lower_case``;
                                      a "9," piece scores 100 lower (ALBERT splits it)
xlm-roberta   XLMRobertaConverter     fairseq ids: ``<s> <pad> </s> <unk>``, then piece i at i + 1
camembert     CamembertConverter      fairseq ids: five fixed tokens, then piece i at i + 4
============  ======================  =====================================================

The family is ``tokenizer_config.json``'s ``tokenizer_class`` when it names one (as in
transformers), else ``config.json``'s ``model_type``. Refused by name, with the fix (add the
model's ``tokenizer.json``): other families, BPE/word/char SentencePiece models, a normalizer
spec the converters do not follow (no dummy prefix, whitespace kept or as suffix), and extra
non-special added tokens. One deliberate difference from the converter: a model trained with
``byte_fallback`` keeps it (the converters drop it with a warning; SentencePiece, which the model
was trained with, splits an unknown character into byte pieces). Where the converters themselves
differ from SentencePiece (DeBERTa: a character the map turns into a space, such as U+FEFF, at
either end of a text leaves a ``▁`` piece; ALBERT: so do spaces at the ends), nlu_lite follows the
converters, as do the ``tokenizer.json`` files saved with fine-tuned models of these families.

Hostile files: a truncated, oversized or garbage file is a :class:`ConversionError` naming it,
never a crash or a hang. Sizes are bounded (:data:`MAX_MODEL_BYTES`, :data:`MAX_PIECES`), and the
character map's trie is checked before ``tokenizers`` may index into it (a bad index there is a
Rust panic at encode time, not an error at load time).

>>> build_tokenizer("deberta-v3-base/", find_model("deberta-v3-base/"))  # doctest: +SKIP
<tokenizers.Tokenizer object at ...>
"""
from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .convert.family import SENTENCEPIECE_FILES
from .errors import ConversionError

SPM_FILES = SENTENCEPIECE_FILES  # DeBERTa-v2/3, ALBERT, XLM-R/CamemBERT (the families declare which of theirs)
MAX_MODEL_BYTES = 64 << 20  # a 250,000-piece model (XLM-R, mT5) is ~5 MB
MAX_PIECES = 1 << 20  # the largest SentencePiece vocabularies have ~256,000 pieces
# SentencePiece's trainer keeps pieces to 16 characters by default (max_sentencepiece_length); the Unigram
# lattice tries every piece that starts at each character, so pieces thousands of characters long make each
# character cost thousands of steps (3,000 pieces "aa" ... "a" * 3001: 20,000 "a"s took 12 s, not 0.01 s)
MAX_PIECE_CHARS = 64
MAX_JSON_BYTES = 16 << 20  # a tokenizer_config.json is a few KB

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # SentencePiece.Type
UNIGRAM, BPE, WORD, CHAR = 1, 2, 3, 4  # TrainerSpec.ModelType
_FIX = "add the model's tokenizer.json (transformers: AutoTokenizer.from_pretrained(folder).save_pretrained(folder))"


@dataclass(frozen=True)
class SpmModel:
    """What the encoder needs from a SentencePiece ``ModelProto`` (proto2 defaults filled in)."""

    pieces: tuple[tuple[str, float, int], ...]  # (text, score, type) by id
    model_type: int = UNIGRAM
    unk_id: int = 0
    byte_fallback: bool = False
    treat_whitespace_as_suffix: bool = False
    normalizer_name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def find_model(folder: str | Path) -> Path | None:
    """The folder's SentencePiece model file, if it has one (in :data:`SPM_FILES` order)."""
    for name in SPM_FILES:
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


# --- the protobuf wire format ------------------------------------------------------------------

class _Malformed(Exception):
    """The bytes are not a well-formed ``ModelProto``; :func:`read_model` names the file."""


_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Malformed("a number runs past the end of its message (the file is truncated)")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("a number is longer than 10 bytes")


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of one message; a length-delimited value is its
    ``(start, end)`` span. Groups and unknown wire types are malformed (no ModelProto has them)."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("a field has number 0")
        if wire == _VARINT:
            value, pos = _varint(data, pos, end)
        elif wire == _LEN:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise _Malformed("a field runs past the end of its message (the file is truncated)")
            value, pos = (pos, pos + length), pos + length
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if size > end - pos:
                raise _Malformed("a field runs past the end of its message (the file is truncated)")
            value, pos = pos, pos + size
        else:
            raise _Malformed(f"field {number} has wire type {wire}, which a SentencePiece model never uses")
        yield number, wire, value


def _expect(number: int, wire: int, wanted: int, message: str) -> None:
    if wire != wanted:
        raise _Malformed(f"{message} field {number} has wire type {wire}, not {wanted}")


def _int32(value: int) -> int:
    value = value - (1 << 64) if value >= 1 << 63 else value
    if not -(1 << 31) <= value < 1 << 31:
        raise _Malformed(f"an int32 field holds {value}")
    return value


def _text(data: bytes, span: tuple[int, int], what: str) -> str:
    try:
        return data[span[0]:span[1]].decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{what} is not UTF-8 text") from None


def _piece(data: bytes, span: tuple[int, int]) -> tuple[str, float, int]:
    """One ``SentencePiece`` message; the layout every writer uses (text, score, type, in order, short
    text) is read directly, anything else field by field (a 250,000-piece file loads in a fraction
    of a second either way)."""
    start, end = span
    length = data[start + 1] if end - start > 1 else 0x80
    after = start + 2 + length
    if data[start] == 0x0A and length < 0x80 and after + 5 <= end and data[after] == 0x15 and (
            after + 5 == end or (after + 7 == end and data[after + 5] == 0x18 and data[after + 6] < 0x80)):
        kind = data[after + 6] if after + 7 == end else NORMAL
        return _text(data, (start + 2, after), "a piece"), struct.unpack_from("<f", data, after + 1)[0], kind
    text, score, kind = "", 0.0, NORMAL
    for number, wire, value in _fields(data, start, end):
        if number == 1:
            _expect(number, wire, _LEN, "SentencePiece")
            text = _text(data, value, "a piece")
        elif number == 2:
            _expect(number, wire, _I32, "SentencePiece")
            score = struct.unpack_from("<f", data, value)[0]
        elif number == 3:
            _expect(number, wire, _VARINT, "SentencePiece")
            kind = value
    return text, score, kind


_TRAINER = {3: "model_type", 40: "unk_id", 35: "byte_fallback", 24: "treat_whitespace_as_suffix"}
_NORMALIZER = {1: "normalizer_name", 2: "precompiled_charsmap", 3: "add_dummy_prefix",
               4: "remove_extra_whitespaces", 5: "escape_whitespaces"}


def _spec(data: bytes, span: tuple[int, int], names: Mapping[int, str], out: dict[str, Any]) -> None:
    """The fields of a TrainerSpec / NormalizerSpec that the encoder reads, into ``out``."""
    for number, wire, value in _fields(data, *span):
        name = names.get(number)
        if name is None:
            continue
        if name == "normalizer_name":
            _expect(number, wire, _LEN, "NormalizerSpec")
            out[name] = _text(data, value, "normalizer_spec.name")
        elif name == "precompiled_charsmap":
            _expect(number, wire, _LEN, "NormalizerSpec")
            out[name] = data[value[0]:value[1]]
        else:
            _expect(number, wire, _VARINT, "spec")
            out[name] = _int32(value) if name in ("model_type", "unk_id") else value != 0


def _parse(data: bytes) -> SpmModel:
    pieces: list[tuple[str, float, int]] = []
    settings: dict[str, Any] = {}
    specs = set()
    for number, wire, value in _fields(data, 0, len(data)):
        if number == 1:
            _expect(number, wire, _LEN, "ModelProto")
            if len(pieces) >= MAX_PIECES:
                raise _Malformed(f"it has more than {MAX_PIECES:,} pieces")
            pieces.append(_piece(data, value))
        elif number in (2, 3):  # trainer_spec, normalizer_spec: repeated occurrences merge (proto2)
            _expect(number, wire, _LEN, "ModelProto")
            _spec(data, value, _TRAINER if number == 2 else _NORMALIZER, settings)
            specs.add(number)
    longest = max(pieces, key=lambda p: len(p[0]), default=("", 0.0, NORMAL))[0]
    if len(longest) > MAX_PIECE_CHARS:
        raise _Malformed(f"it has a piece of {len(longest):,} characters ({longest[:20]!r}...; the limit is "
                         f"{MAX_PIECE_CHARS}, SentencePiece's trainer keeps them to 16 by default): pieces that long "
                         "make every character of a text cost as many lattice steps")
    if specs != {2, 3}:  # SentencePiece writes both, after the pieces: a file cut short lacks one
        raise _Malformed(f"it has no {'trainer_spec' if 2 not in specs else 'normalizer_spec'} (the file is "
                         "truncated)")
    return SpmModel(pieces=tuple(pieces), **settings)


def read_model(path: str | Path) -> SpmModel:
    """The SentencePiece model in ``path``, checked; a :class:`ConversionError` naming the file when
    it is not one (truncated, garbage, a Git LFS pointer, too big) or is a kind nlu_lite does not build."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            # read what the file holds (read(n) would allocate n bytes first), never past the limit
            size = os.fstat(fh.fileno()).st_size
            data = fh.read(min(size, MAX_MODEL_BYTES) + 1)
    except OSError as exc:
        raise ConversionError(f"{path} cannot be read ({exc}); download the model again") from None
    if len(data) > MAX_MODEL_BYTES:
        raise ConversionError(f"{path} is larger than nlu_lite reads as a SentencePiece model (limit "
                              f"{MAX_MODEL_BYTES:,} bytes; real ones are a few MB): download the model again, or {_FIX}")
    if data.startswith(b"version https://git-lfs"):
        raise ConversionError(f"{path} is a Git LFS pointer, not the SentencePiece model; fetch the file itself "
                              "(git lfs pull) or download the model again")
    try:
        model = _parse(data)
        _check(model)
    except _Malformed as exc:
        raise ConversionError(f"{path} is not a SentencePiece model: {exc}; download the model again, "
                              f"or {_FIX}") from None
    _check_kind(model, path)
    return model


def _check(model: SpmModel) -> None:
    """What SentencePiece itself refuses to load, and what would make ``tokenizers`` panic."""
    if not model.pieces:
        raise _Malformed("it has no pieces")
    seen: set[str] = set()
    for i, (text, score, kind) in enumerate(model.pieces):
        if not text:
            raise _Malformed(f"piece {i} is empty")
        if text in seen:
            raise _Malformed(f"piece {text!r} is defined twice")
        if not math.isfinite(score):
            raise _Malformed(f"piece {text!r} has score {score}")
        if kind not in (NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE):
            raise _Malformed(f"piece {text!r} has type {kind}, which SentencePiece does not define")
        seen.add(text)
    if not 0 <= model.unk_id < len(model.pieces) or model.pieces[model.unk_id][2] != UNKNOWN:
        raise _Malformed(f"trainer_spec.unk_id {model.unk_id} is not the id of its unknown piece")
    if model.byte_fallback:
        missing = [f"<0x{b:02X}>" for b in range(256) if f"<0x{b:02X}>" not in seen]
        if missing:
            raise _Malformed(f"it uses byte fallback but has no byte piece {missing[0]}")
    if model.precompiled_charsmap:
        _check_charsmap(model.precompiled_charsmap)


def _check_charsmap(blob: bytes) -> None:
    """Every index ``tokenizers``' ``Precompiled`` normalizer can reach lies inside the map.

    The map is a darts-clone double-array trie over UTF-8 bytes, then the replacement strings.
    From the root and from each unit a byte can land on (label 1..255), the next lookups read
    ``base ^ byte`` (at most ``base | 0xFF``); a unit with a leaf points at a replacement, which must
    start on a character of the strings. (Conservative: a unit no text reaches is checked too.)
    """
    if len(blob) < 8:
        raise _Malformed("normalizer_spec.precompiled_charsmap is shorter than its header")
    trie_bytes = int.from_bytes(blob[:4], "little") // 4 * 4
    if not 4 <= trie_bytes <= len(blob) - 4:
        raise _Malformed("normalizer_spec.precompiled_charsmap's trie runs past its end")
    units = np.frombuffer(blob, dtype="<u4", count=trie_bytes // 4, offset=4).astype(np.int64)
    strings = blob[4 + trie_bytes:]
    try:
        strings.decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("normalizer_spec.precompiled_charsmap's strings are not UTF-8") from None
    n = len(units)
    label = units & ((1 << 31) | 0xFF)
    base = np.arange(n, dtype=np.int64) ^ ((units >> 10) << ((units & (1 << 9)) >> 6))
    current = (label >= 1) & (label <= 0xFF)
    current[0] = True  # the root
    if np.any((base[current] | 0xFF) >= n):
        raise _Malformed("normalizer_spec.precompiled_charsmap's trie points outside itself")
    leaf = current & (((units >> 8) & 1) == 1)
    leaf[0] = False  # the root's leaf flag is never read
    starts = units[base[leaf]] & ((1 << 31) - 1)
    if np.any(starts > len(strings)):
        raise _Malformed("normalizer_spec.precompiled_charsmap points past its strings")
    inside = starts[starts < len(strings)]
    if np.any((np.frombuffer(strings, np.uint8)[inside] & 0xC0) == 0x80):
        raise _Malformed("normalizer_spec.precompiled_charsmap points into the middle of a character")


def _check_kind(model: SpmModel, path: Path) -> None:
    """Refuse by name what the family converters do not build (each a well-formed model)."""
    kinds = {BPE: "a BPE", WORD: "a word", CHAR: "a character"}
    if model.model_type != UNIGRAM:
        what = kinds.get(model.model_type, f"a type-{model.model_type}")
        raise ConversionError(f"{path} is {what} SentencePiece model; nlu_lite builds tokenizers from Unigram "
                              f"SentencePiece models only: {_FIX}")
    unusual = [name for name, value in (("add_dummy_prefix", model.add_dummy_prefix),
                                        ("remove_extra_whitespaces", model.remove_extra_whitespaces),
                                        ("escape_whitespaces", model.escape_whitespaces)) if not value]
    unusual += ["treat_whitespace_as_suffix"] if model.treat_whitespace_as_suffix else []
    if unusual:
        raise ConversionError(
            f"{path} sets {', '.join(unusual)} differently from the models transformers' converters are written "
            f"for (normalizer_spec / trainer_spec), so nlu_lite would tokenize differently from SentencePiece: {_FIX}"
        )


# --- the tokenizer options ---------------------------------------------------------------------

_SPECIAL = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@dataclass(frozen=True)
class TokenizerOptions:
    """The options of ``tokenizer_config.json`` (overridden by ``special_tokens_map.json``, as in
    transformers) that the converters read, and the added tokens ``added_tokens_decoder`` or
    ``added_tokens.json`` declare."""

    values: Mapping[str, Any]  # do_lower_case, split_by_punct, keep_accents, add_prefix_space: bools
    special: Mapping[str, str]  # bos_token ... mask_token -> text, as given
    additional: tuple[str, ...]  # additional_special_tokens
    declared: tuple[tuple[int, str, bool | None], ...]  # (id, text, special or None when not said)
    tokenizer_class: str | None
    where: str  # the files read, for messages

    def flag(self, name: str, default: bool) -> bool:
        return self.values.get(name, default)


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ConversionError(f"{path} is larger than {MAX_JSON_BYTES:,} bytes, far more than a tokenizer "
                                  "setting takes; download the model again")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ConversionError(f"{path} is not valid JSON ({exc}); download the model again") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} holds a JSON {type(data).__name__}, not an object; download the model again")
    return data


def _token_text(value: Any, field: str, where: Path) -> str:
    """A special token as saved: a string, or an AddedToken's dict with its ``content``."""
    text = value.get("content") if isinstance(value, dict) else value
    if not isinstance(text, str) or not text:
        raise ConversionError(f"{where}: {field} is {str(value)[:60]!r}, not a token (a non-empty string or "
                              f"an object with 'content'); fix it or download the model again")
    return text


_FLAGS = ("do_lower_case", "split_by_punct", "keep_accents", "add_prefix_space")


def read_options(folder: str | Path) -> TokenizerOptions:
    """The tokenizer options of ``folder``; each bad value a :class:`ConversionError` naming file and field."""
    folder = Path(folder)
    merged: dict[str, Any] = {}  # tokenizer_config.json, special_tokens_map.json over it (as transformers does)
    declared: dict[int, tuple[str, bool | None]] = {}
    read = []
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        data = _read_json(folder / name)
        if data is not None:
            read.append(name)
            merged.update(_settings(data, folder / name))
            declared.update(_declared(data.get("added_tokens_decoder"), folder / name))
    if (folder / "added_tokens.json").is_file():
        read.append("added_tokens.json")
        _added_tokens_json(folder, declared)
    return TokenizerOptions(
        values={f: merged[f] for f in _FLAGS if f in merged}, special={f: merged[f] for f in _SPECIAL if f in merged},
        additional=merged.get("additional_special_tokens", ()),
        declared=tuple((i, text, special) for i, (text, special) in sorted(declared.items())),
        tokenizer_class=merged.get("tokenizer_class"),
        where=", ".join(str(folder / name) for name in read) or f"{folder} (no tokenizer settings: defaults)",
    )


def _settings(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The flags, special tokens and ``tokenizer_class`` one settings file gives, checked."""
    out: dict[str, Any] = {}
    for field in _FLAGS:
        if field in data:
            if not isinstance(data[field], bool):
                raise ConversionError(f"{path}: {field} is {str(data[field])[:60]!r}, not true or false; "
                                      "fix it or download the model again")
            out[field] = data[field]
    out.update({f: _token_text(data[f], f, path) for f in _SPECIAL if data.get(f) is not None})
    tokens = data.get("additional_special_tokens")
    if tokens is not None:
        if not isinstance(tokens, list):
            raise ConversionError(f"{path}: additional_special_tokens is not a list; download the model again")
        out["additional_special_tokens"] = tuple(_token_text(t, "additional_special_tokens", path) for t in tokens)
    if isinstance(data.get("tokenizer_class"), str):
        out["tokenizer_class"] = data["tokenizer_class"]
    return out


def _added_tokens_json(folder: Path, declared: dict[int, tuple[str, bool | None]]) -> None:
    """``added_tokens.json`` (``{"[MASK]": 128000}``) into ``declared``; it must agree with
    ``added_tokens_decoder``."""
    path = folder / "added_tokens.json"
    for text, token_id in (_read_json(path) or {}).items():
        if type(token_id) is not int or not 0 <= token_id < MAX_PIECES + 1024:
            raise ConversionError(f"{path}: {text[:60]!r} has id {str(token_id)[:20]}, not a token id; "
                                  "download the model again")
        if token_id in declared and declared[token_id][0] != text:
            raise ConversionError(f"{path} gives id {token_id} to {text[:60]!r}, but added_tokens_decoder in "
                                  f"{folder / 'tokenizer_config.json'} gives it to {declared[token_id][0][:60]!r}; "
                                  f"{_FIX}")
        declared.setdefault(token_id, (text, None))


def _declared(entries: Any, path: Path) -> dict[int, tuple[str, bool | None]]:
    """``added_tokens_decoder``: ``{"128000": {"content": "[MASK]", "special": true, ...}}``."""
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ConversionError(f"{path}: added_tokens_decoder is not an object; download the model again")
    out = {}
    for key, entry in entries.items():
        if not (key.isascii() and key.isdigit()) or int(key) >= MAX_PIECES + 1024 or not isinstance(entry, dict):
            raise ConversionError(f"{path}: added_tokens_decoder entry {key[:20]!r} is not an id with a token; "
                                  "download the model again")
        special = entry.get("special")
        out[int(key)] = (_token_text(entry, f"added_tokens_decoder[{key}]", path),
                         special if isinstance(special, bool) else None)
    return out


# --- the families: transformers' converters, as data and small functions -----------------------

@dataclass(frozen=True)
class _Recipe:
    """One converter of ``convert_slow_tokenizer.py``: its vocabulary and unknown id from the model
    file, its normalizers and pre-tokenizers from the options, its framing and default tokens."""

    converter: str
    defaults: Mapping[str, str]
    framing: tuple[str, str]  # the option fields of the tokens before and after a sequence
    vocab: Callable[[SpmModel], list[tuple[str, float]]]
    unk_id: Callable[[SpmModel], int]
    normalizers: Callable[[SpmModel, TokenizerOptions], list]
    pre_tokenizer: Callable[[TokenizerOptions], Any]
    additional: tuple[str, ...] = ()
    roberta_pair: bool = False  # pairs as "<s> $A </s> </s> $B </s>" (else "[CLS] $A [SEP] $B [SEP]")


def _plain_vocab(model: SpmModel) -> list[tuple[str, float]]:
    return [(text, score) for text, score, _ in model.pieces]


def _albert_vocab(model: SpmModel) -> list[tuple[str, float]]:
    """ALBERT's slow tokenizer splits a piece like "9," into "9" and ","; the converter makes such a
    piece 100 points less likely instead (``check_number_comma``)."""
    return [(t, s) if len(t) < 2 or t[-1] != "," or not t[-2].isdigit() else (t, s - 100) for t, s, _ in model.pieces]


def _xlm_roberta_vocab(model: SpmModel) -> list[tuple[str, float]]:
    """fairseq's dictionary: ``<s> <pad> </s> <unk>``, the pieces after the first three, ``<mask>``."""
    _fairseq_layout(model, ("<unk>", "<s>", "</s>"), "XLM-R")
    return [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + _plain_vocab(model)[3:] + [("<mask>", 0.0)]


def _camembert_vocab(model: SpmModel) -> list[tuple[str, float]]:
    """fairseq's CamemBERT dictionary: five fixed entries, the pieces after the first, ``<mask>``."""
    _fairseq_layout(model, ("<unk>",), "CamemBERT")
    head = [("<s>NOTUSED", 0.0), ("<pad>", 0.0), ("</s>NOTUSED", 0.0), ("<unk>", 0.0), ("<unk>NOTUSED", -100.0)]
    return head + _plain_vocab(model)[1:] + [("<mask>", 0.0)]


def _fairseq_layout(model: SpmModel, first: tuple[str, ...], name: str) -> None:
    """The fairseq converters drop the first pieces by position, trusting SentencePiece's default layout."""
    if tuple(text for text, _, _ in model.pieces[:len(first)]) != first:
        raise _Malformed(f"its first pieces are not {' '.join(first)}, which {name}'s fixed id layout assumes")


def _deberta_normalizers(model: SpmModel, options: TokenizerOptions) -> list:
    from tokenizers import Regex, normalizers

    steps = [normalizers.Lowercase()] if options.flag("do_lower_case", False) else []
    steps.append(normalizers.Strip())
    steps += _precompiled(model)
    return steps + [normalizers.Replace(Regex(" {2,}"), " ")]


def _albert_normalizers(model: SpmModel, options: TokenizerOptions) -> list:
    from tokenizers import Regex, normalizers

    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not options.flag("keep_accents", False):
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if options.flag("do_lower_case", True):
        steps.append(normalizers.Lowercase())
    steps += _precompiled(model)
    return steps + [normalizers.Replace(Regex(" {2,}"), " ")]


def _spm_normalizers(model: SpmModel, options: TokenizerOptions) -> list:
    """``SpmConverter.normalizer``: the character map, then right strip and runs of spaces to one ``▁``."""
    from tokenizers import Regex, normalizers

    return _precompiled(model) + [normalizers.Strip(left=False, right=True),
                                  normalizers.Replace(Regex(" {2,}"), "▁")]


def _precompiled(model: SpmModel) -> list:
    from tokenizers import normalizers

    return [normalizers.Precompiled(model.precompiled_charsmap)] if model.precompiled_charsmap else []


def _metaspace(options: TokenizerOptions):
    """``SpmConverter.pre_tokenizer``: ``▁`` for spaces, and one before the text."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")


def _deberta_pre_tokenizer(options: TokenizerOptions):
    from tokenizers import pre_tokenizers

    split = [pre_tokenizers.Punctuation(behavior="isolated")] if options.flag("split_by_punct", False) else []
    return pre_tokenizers.Sequence([*split, _metaspace(options)])


_BRACKETS = {"bos_token": "[CLS]", "eos_token": "[SEP]", "sep_token": "[SEP]", "cls_token": "[CLS]",
             "mask_token": "[MASK]"}
_FAIRSEQ = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
            "pad_token": "<pad>", "mask_token": "<mask>"}

RECIPES: dict[str, _Recipe] = {
    "deberta-v2": _Recipe("DebertaV2Converter", {**_BRACKETS, "unk_token": "[UNK]", "pad_token": "[PAD]"},
                          ("cls_token", "sep_token"), _plain_vocab, lambda m: m.unk_id,
                          _deberta_normalizers, _deberta_pre_tokenizer),
    "albert": _Recipe("AlbertConverter", {**_BRACKETS, "unk_token": "<unk>", "pad_token": "<pad>"},
                      ("cls_token", "sep_token"), _albert_vocab, lambda m: m.unk_id,
                      _albert_normalizers, _metaspace),
    "xlm-roberta": _Recipe("XLMRobertaConverter", _FAIRSEQ, ("bos_token", "eos_token"),
                           _xlm_roberta_vocab, lambda m: 3, _spm_normalizers, _metaspace, roberta_pair=True),
    "camembert": _Recipe("CamembertConverter", _FAIRSEQ, ("bos_token", "eos_token"),
                         _camembert_vocab, lambda m: 3, _spm_normalizers, _metaspace,
                         additional=("<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"), roberta_pair=True),
}
# tokenizer_config.json's tokenizer_class -> family (transformers picks the class before model_type)
TOKENIZER_CLASSES = {f"{name}{fast}": family for name, family in (
    ("DebertaV2Tokenizer", "deberta-v2"), ("AlbertTokenizer", "albert"), ("XLMRobertaTokenizer", "xlm-roberta"),
    ("CamembertTokenizer", "camembert")) for fast in ("", "Fast")}


def family_of(folder: str | Path, path: Path, options: TokenizerOptions) -> str:
    """The converter family: ``tokenizer_class`` when set, else ``config.json``'s ``model_type``."""
    folder = Path(folder)
    if options.tokenizer_class is not None:
        family = TOKENIZER_CLASSES.get(options.tokenizer_class)
        if family is None:
            raise ConversionError(
                f"{options.where} names tokenizer_class {options.tokenizer_class[:60]!r}; nlu_lite builds a "
                f"tokenizer from {path.name} only for {', '.join(sorted(TOKENIZER_CLASSES))}: {_FIX}"
            )
        return family
    config = _read_json(folder / "config.json")
    model_type = (config or {}).get("model_type")
    if model_type not in RECIPES:
        said = f"model_type {str(model_type)[:40]!r}" if config is not None else "no config.json"
        raise ConversionError(
            f"{folder} has {said}; nlu_lite builds a tokenizer from {path.name} only for the model types "
            f"{', '.join(RECIPES)} (as transformers' converters do): {_FIX}"
        )
    return model_type


# --- assembling the tokenizer ------------------------------------------------------------------

def build_tokenizer(folder: str | Path, path: str | Path | None = None):
    """The ``tokenizers.Tokenizer`` transformers' converter builds from ``folder``'s SentencePiece
    model (``path``; found by :func:`find_model` when not given) for the folder's family."""
    folder = Path(folder)
    path = Path(path) if path is not None else find_model(folder)
    if path is None:
        raise ConversionError(f"{folder} has no SentencePiece model ({', '.join(SPM_FILES)}); {_FIX}")
    options = read_options(folder)
    recipe = RECIPES[family_of(folder, path, options)]
    model = read_model(path)
    try:
        vocab = recipe.vocab(model)
    except _Malformed as exc:
        raise ConversionError(f"{path} does not fit {recipe.converter}: {exc}; {_FIX}") from None
    if len({text for text, _ in vocab}) != len(vocab):  # a fairseq layout's fixed tokens repeated among the pieces
        raise ConversionError(f"{path} does not fit {recipe.converter}: its id layout gives one token two ids; {_FIX}")
    return _assemble(model, vocab, recipe, options, path)


def _assemble(model: SpmModel, vocab: list[tuple[str, float]], recipe: _Recipe, options: TokenizerOptions,
              path: Path):
    from tokenizers import Tokenizer, decoders, normalizers
    from tokenizers.models import Unigram

    if options.values.get("add_prefix_space") is False:
        raise ConversionError(f"{options.where} sets add_prefix_space: false, but SentencePiece adds the leading "
                              f"'▁' its pieces were trained with and {recipe.converter} always does: {_FIX}")
    tokenizer = Tokenizer(Unigram(vocab, unk_id=recipe.unk_id(model), byte_fallback=model.byte_fallback))
    tokenizer.normalizer = normalizers.Sequence(recipe.normalizers(model, options))
    tokenizer.pre_tokenizer = recipe.pre_tokenizer(options)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    ids = {text: i for i, (text, _) in enumerate(vocab)}
    tokenizer.post_processor = _post_processor(ids, recipe, options, path)
    _add_tokens(tokenizer, model, ids, recipe, options, path)
    return tokenizer


def _add_tokens(tokenizer, model: SpmModel, ids: Mapping[str, int], recipe: _Recipe, options: TokenizerOptions,
                path: Path) -> None:
    """Control pieces as special tokens and user-defined pieces as plain ones, matched on the raw text
    (the converter); then the declared added tokens at their ids and the special tokens the settings
    name (transformers' fast tokenizer adds those). Special tokens are never matched in nlu_lite's input."""
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(text, normalized=False, special=kind == CONTROL)
                          for text, _, kind in model.pieces if kind in (CONTROL, USER_DEFINED)])
    special = {**recipe.defaults, **options.special}
    named = [*(special[f] for f in _SPECIAL if f in special), *recipe.additional, *options.additional]
    for token_id, text, is_special in options.declared:
        _check_declared(tokenizer, ids, token_id, text, is_special or (is_special is None and text in named),
                        options, recipe, path)
        if token_id >= len(ids):
            tokenizer.add_special_tokens([AddedToken(text, normalized=False, special=True)])
    tokenizer.add_special_tokens([AddedToken(text, normalized=False, special=True) for text in dict.fromkeys(named)])


def _check_declared(tokenizer, ids: Mapping[str, int], token_id: int, text: str, special: bool,
                    options: TokenizerOptions, recipe: _Recipe, path: Path) -> None:
    """A declared token is the piece at its id, or a special token at the next free id."""
    where = f"{options.where} gives id {token_id} to {text[:60]!r}"
    if token_id < len(ids):
        piece = next(t for t, i in ids.items() if i == token_id) if ids.get(text) != token_id else text
        if piece != text:
            raise ConversionError(f"{where}, but in {path} ({recipe.converter}'s layout) it is {piece[:60]!r}; {_FIX}")
        return
    next_id = tokenizer.get_vocab_size(with_added_tokens=True)
    if token_id != next_id:
        raise ConversionError(f"{where}, but the next free id after {path}'s pieces is {next_id}; {_FIX}")
    if not special or text in ids:
        raise ConversionError(f"{where}: not a special token, or one the model already has; nlu_lite does not build "
                              f"such added tokens: {_FIX}")


def _post_processor(ids: Mapping[str, int], recipe: _Recipe, options: TokenizerOptions, path: Path):
    """BERT-style ``[CLS]:0 $A:0 [SEP]:0`` (pairs ``… $B:1 [SEP]:1``) or RoBERTa-style ``<s> $A </s>``
    (pairs ``<s> $A </s> </s> $B </s>``), with the ids of the tokens the settings name: pieces of the
    model, whose embeddings were trained (never a token added after them)."""
    from tokenizers.processors import TemplateProcessing

    special = {**recipe.defaults, **options.special}
    first, last = (special[field] for field in recipe.framing)
    for field, text in zip(recipe.framing, (first, last)):
        if text not in ids or any(c in ":$" or c.isspace() for c in text):
            raise ConversionError(f"{options.where}: {field} {text[:60]!r} is not a piece of {path} that can frame "
                                  f"a sequence; fix {field} or {_FIX}")
    if recipe.roberta_pair:
        single, pair = [first, "$A", last], [first, "$A", last, last, "$B", last]
    else:
        single = [f"{first}:0", "$A:0", f"{last}:0"]
        pair = single + ["$B:1", f"{last}:1"]
    return TemplateProcessing(single=single, pair=pair, special_tokens=[(t, ids[t]) for t in dict.fromkeys((first, last))])
