"""Folders that ship only a SentencePiece model (DeBERTa-v3's ``spm.model``, ALBERT's ``spiece.model``,
XLM-R's and CamemBERT's ``sentencepiece.bpe.model``): nlu_lite builds the tokenizer transformers'
converter builds for the family (same ids, framing and offsets on hostile and random text), reads the
protobuf as the protobuf library does, follows SentencePiece itself where it is the reference, and
refuses damaged or unsupported files by name.

transformers 5's ``AutoTokenizer`` no longer runs these converters (its DebertaV2Tokenizer, AlbertTokenizer,
XLMRobertaTokenizer rebuild tokenizers of their own; DeBERTa's without the model's character map), so the
reference here is the converter class itself (``convert_slow_tokenizer.DebertaV2Converter`` ...), fed what
it reads from a slow tokenizer, wrapped in a fast tokenizer with the folder's special tokens.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from _tokenizers import EXTRA_TEXTS, training_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_inputs import TEXTS, _valid
from test_tokenizers import _check_against_reference

from nlu_lite import spm as nlu_spm
from nlu_lite.errors import ConversionError
from nlu_lite.tokenize import PieceTokenizer

pytest.importorskip("sentencepiece")

DEBERTA_LAYOUT = {"pad_id": 0, "pad_piece": "[PAD]", "bos_id": 1, "bos_piece": "[CLS]", "eos_id": 2,
                  "eos_piece": "[SEP]", "unk_id": 3, "unk_piece": "[UNK]"}
ALBERT_LAYOUT = {"pad_id": 0, "pad_piece": "<pad>", "unk_id": 1, "unk_piece": "<unk>", "bos_id": -1, "eos_id": -1,
                 "control_symbols": ["[CLS]", "[SEP]", "[MASK]"], "user_defined_symbols": ["<url>"]}
FAIRSEQ_LAYOUT: dict = {}  # SentencePiece's default: <unk> <s> </s>

# microsoft/deberta-v3-base's and albert-base-v2's special_tokens_map.json; XLM-R's and CamemBERT's
DEBERTA_SPECIAL = {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
                   "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
ALBERT_SPECIAL = {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "<unk>", "sep_token": "[SEP]",
                  "pad_token": "<pad>", "cls_token": "[CLS]",
                  "mask_token": {"content": "[MASK]", "single_word": False, "lstrip": True, "rstrip": False,
                                 "normalized": False}}
FAIRSEQ_SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                   "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}

# name: (model file, layout, model_type, tokenizer_config.json, special_tokens_map.json, converter)
FOLDERS = {
    "deberta": ("spm.model", "deberta", "deberta-v2", {"do_lower_case": False, "vocab_type": "spm"},
                DEBERTA_SPECIAL, "DebertaV2Converter"),
    "deberta-lower": ("spm.model", "deberta", "deberta-v2", {"do_lower_case": True, "vocab_type": "spm"},
                      DEBERTA_SPECIAL, "DebertaV2Converter"),
    "deberta-punct": ("spm.model", "deberta", "deberta-v2", {"split_by_punct": True,
                                                             "tokenizer_class": "DebertaV2Tokenizer"},
                      DEBERTA_SPECIAL, "DebertaV2Converter"),
    "albert": ("spiece.model", "albert", "albert", {"do_lower_case": True, "remove_space": True,
                                                    "keep_accents": False}, ALBERT_SPECIAL, "AlbertConverter"),
    "albert-cased": ("spiece.model", "albert", "albert", {"do_lower_case": False, "keep_accents": True},
                     ALBERT_SPECIAL, "AlbertConverter"),
    "xlm-roberta": ("sentencepiece.bpe.model", "fairseq", "xlm-roberta", {}, FAIRSEQ_SPECIAL,
                    "XLMRobertaConverter"),
    "camembert": ("sentencepiece.bpe.model", "fairseq", "camembert",
                  {"additional_special_tokens": ["<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"]}, FAIRSEQ_SPECIAL,
                  "CamembertConverter"),
}
LAYOUTS = {"deberta": DEBERTA_LAYOUT, "albert": ALBERT_LAYOUT, "fairseq": FAIRSEQ_LAYOUT}
MORE_TEXTS = ["", " ", "a", "x" * 300, "Hello" * 50, "  two  spaces  ", "1,000 and 9, then 12,5", "``quoted''",
              "Ｆｕｌｌ width ① ﬁ", "Ä Ö ü É", "see <url> and <URL>", "[MASK] <mask> <s>NOTUSED"]


def train(*, vocab_size: int = 200, **options) -> bytes:
    """A Unigram SentencePiece model trained on the test corpus, as the file's bytes.

    Every character of the corpus and of ASCII is a piece, as in the real models. (A control token
    whose characters are not all pieces is reachable in ``tokenizers``' Unigram however low its score:
    the unknown piece's score is derived from the lowest score.)
    """
    import sentencepiece as spm

    buf = io.BytesIO()
    ascii_line = " ".join(chr(c) for c in range(0x21, 0x7F))  # SentencePiece skips them inside "[CLS]"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(training_lines() + [ascii_line] * 5), model_writer=buf,
                                   vocab_size=vocab_size, minloglevel=2, num_threads=1,
                                   **{"model_type": "unigram", "character_coverage": 1.0, **options})
    return buf.getvalue()


def write_folder(folder: Path, model: bytes, file: str, model_type: str, config: dict, special: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_bytes(model)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def models():
    return {name: train(**layout) for name, layout in LAYOUTS.items()}


@pytest.fixture(scope="module")
def folders(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("spm")
    out = {}
    for name, (file, layout, model_type, config, special, _) in FOLDERS.items():
        folder = write_folder(root / name, models[layout], file, model_type, config, special)
        if layout == "deberta":  # deberta-v3's added_tokens.json: [MASK] after the pieces
            n_pieces = len(nlu_spm.read_model(folder / file).pieces)
            (folder / "added_tokens.json").write_text(json.dumps({"[MASK]": n_pieces}), encoding="utf-8")
        out[name] = folder
    return out


class SlowStandIn:
    """What transformers' converters read from a slow tokenizer (transformers 5 has none for these families)."""

    def __init__(self, vocab_file: Path, options: dict):
        self.vocab_file = str(vocab_file)
        self.do_lower_case = options.get("do_lower_case", True)
        self.keep_accents = options.get("keep_accents", False)
        self.split_by_punct = options.get("split_by_punct", False)
        self.ids: dict[str, int] = {}

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.ids[token]


def converted(folder: Path, name: str):
    """transformers' converter's ``tokenizers.Tokenizer`` for the folder."""
    import importlib
    import warnings

    converters = importlib.import_module("transformers.convert_slow_tokenizer")  # not the function of that name
    file, _, model_type, config, _, converter_name = FOLDERS[name]
    if model_type == "deberta-v2":
        config = {"do_lower_case": False, **config}  # DebertaV2Tokenizer's default
    slow = SlowStandIn(folder / file, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = getattr(converters, converter_name)(slow)
    slow.ids = {token: i for i, (token, _) in reversed(list(enumerate(converter.vocab(converter.proto))))}
    return converter.converted()


def reference(folder: Path, name: str):
    """The fast tokenizer transformers makes of the converter's output and the folder's special tokens."""
    from transformers import PreTrainedTokenizerFast

    special = {k: v["content"] if isinstance(v, dict) else v for k, v in FOLDERS[name][4].items()}
    return PreTrainedTokenizerFast(tokenizer_object=converted(folder, name), **special)


@pytest.fixture(scope="module")
def pairs(folders):
    return {name: (PieceTokenizer.from_folder(folder), reference(folder, name)) for name, folder in folders.items()}


@pytest.mark.parametrize("name", FOLDERS)
def test_the_tokenizer_is_the_converters_own(folders, name):
    ours = json.loads(nlu_spm.build_tokenizer(folders[name]).to_str())
    theirs = json.loads(converted(folders[name], name).to_str())
    for part in ("normalizer", "pre_tokenizer", "model", "post_processor", "decoder"):
        assert ours[part] == theirs[part], part
    ours_added = {t["content"]: t for t in ours["added_tokens"]}
    for token in theirs["added_tokens"]:  # the converter's (control and user-defined pieces), and the settings'
        assert ours_added[token["content"]] == token
    assert {FOLDERS[name][4]["cls_token"], FOLDERS[name][4]["unk_token"]} <= set(ours_added)


@pytest.mark.parametrize("name", FOLDERS)
def test_ids_and_offsets_equal_transformers_on_hostile_text(pairs, name):
    ours, ref = pairs[name]
    _check_against_reference(ours, ref, EXTRA_TEXTS + MORE_TEXTS)


@pytest.mark.parametrize("name", FOLDERS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_ids_and_offsets_equal_transformers_on_random_unicode(pairs, name, texts):
    ours, ref = pairs[name]
    _check_against_reference(ours, ref, [_valid(t) for t in texts])


@pytest.mark.parametrize("name", FOLDERS)
def test_framing_and_special_ids_are_transformers(pairs, name):
    ours, ref = pairs[name]
    assert ours.framing.prefix == (ref.cls_token_id,) and ours.framing.suffix == (ref.sep_token_id,)
    assert ref("a")["input_ids"][0] == ref.cls_token_id
    assert (ours.pad_id, ours.unk_id) == (ref.pad_token_id, ref.unk_token_id)
    assert ours.vocab_size == len(ref)  # DeBERTa-v3's [MASK] after the pieces, XLM-R's <mask> too
    assert ours.vocabulary[ref.mask_token_id] == ref.mask_token


def test_the_special_token_ids_are_the_models(pairs):
    """The ids the checkpoints' embedding tables were trained with (not taken from the converter)."""
    deberta, albert, xlmr, camembert = (pairs[n][0] for n in ("deberta", "albert", "xlm-roberta", "camembert"))
    n = len(deberta.vocabulary) - 1
    assert (deberta.framing.prefix, deberta.framing.suffix, deberta.pad_id, deberta.unk_id) == ((1,), (2,), 0, 3)
    assert deberta.vocabulary[n] == "[MASK]"  # added_tokens.json: after the pieces
    assert (albert.framing.prefix, albert.framing.suffix, albert.pad_id, albert.unk_id) == ((2,), (3,), 0, 1)
    assert (xlmr.framing.prefix, xlmr.framing.suffix, xlmr.pad_id, xlmr.unk_id) == ((0,), (2,), 1, 3)
    assert xlmr.vocabulary[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and xlmr.vocabulary[-1] == "<mask>"
    assert (camembert.framing.prefix, camembert.framing.suffix, camembert.pad_id, camembert.unk_id) == \
        ((5,), (6,), 1, 3)


NATURAL = training_lines()[:150] + ["Hello, world! Dr. Smith's cafe costs $3.50 (approx.)",
                                    "the quick brown fox jumps over the lazy dog."]


def test_ids_equal_sentencepiece_itself_on_natural_text(folders):
    """SentencePiece is what the checkpoints were trained with: on ordinary text the converters agree
    with it, fairseq's id offsets included (XLM-R: piece + 1; CamemBERT: piece + 4; unknown: 3)."""
    import sentencepiece as spm

    tokenizers = {name: PieceTokenizer.from_folder(folders[name]) for name in
                  ("deberta", "deberta-lower", "albert", "xlm-roberta", "camembert")}
    deberta = spm.SentencePieceProcessor(model_file=str(folders["deberta"] / "spm.model"))
    albert = spm.SentencePieceProcessor(model_file=str(folders["albert"] / "spiece.model"))
    fairseq = spm.SentencePieceProcessor(model_file=str(folders["xlm-roberta"] / "sentencepiece.bpe.model"))
    for text in NATURAL:
        ours = {name: tok.encode([text], words=False).ids.tolist() for name, tok in tokenizers.items()}
        assert ours["deberta"] == deberta.encode(text), text
        assert ours["deberta-lower"] == deberta.encode(text.lower()), text
        assert ours["albert"] == albert.encode(_albert_preprocess(text)), text
        pieces = fairseq.encode(text)
        assert ours["xlm-roberta"] == [3 if i == 0 else i + 1 for i in pieces], text
        assert ours["camembert"] == [3 if i == 0 else i + 4 for i in pieces], text
    full_width = tokenizers["deberta"].encode(["Ｆｕｌｌ ﬁ"], words=False).ids.tolist()
    assert full_width == deberta.encode("Full fi")  # the character map (NFKC) is applied


def _albert_preprocess(text: str) -> str:
    """ALBERT's slow tokenizer before SentencePiece: spaces collapsed, accents stripped, lowercased."""
    import unicodedata

    text = unicodedata.normalize("NFKD", " ".join(text.split()))
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def test_byte_fallback_follows_sentencepiece(tmp_path):
    """transformers' converters drop byte fallback (with a warning); SentencePiece, which the model was
    trained with, spells an unknown character in byte pieces, and so does nlu_lite."""
    import sentencepiece as spm

    model = train(vocab_size=450, byte_fallback=True, **DEBERTA_LAYOUT)
    folder = write_folder(tmp_path / "bf", model, "spm.model", "deberta-v2", {}, DEBERTA_SPECIAL)
    ours = PieceTokenizer.from_folder(folder)
    reference = spm.SentencePieceProcessor(model_file=str(folder / "spm.model"))
    texts = ["Ω≈ç√∫˜µ≤≥÷ 🦀 crab", "hello wörld", "Zebra xylophone Qq", "東京は大きい。"]
    for text in texts:
        assert ours.encode([text], words=False).ids.tolist() == reference.encode(text), text
    assert "<0xF0>" in reference.encode(texts[0], out_type=str)  # the check reaches byte pieces


@pytest.mark.parametrize("name", ["deberta", "albert", "xlm-roberta"])
def test_the_protobuf_reader_reads_what_protobuf_reads(folders, name):
    from sentencepiece import sentencepiece_model_pb2

    path = folders[name] / FOLDERS[name][0]
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    ours = nlu_spm.read_model(path)
    assert ours.pieces == tuple((p.piece, p.score, p.type) for p in proto.pieces)
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    assert (ours.model_type, ours.unk_id, ours.byte_fallback, ours.treat_whitespace_as_suffix) == \
        (spec.model_type, spec.unk_id, spec.byte_fallback, spec.treat_whitespace_as_suffix)
    assert (ours.normalizer_name, ours.precompiled_charsmap, ours.add_dummy_prefix, ours.remove_extra_whitespaces,
            ours.escape_whitespaces) == (norm.name, norm.precompiled_charsmap, norm.add_dummy_prefix,
                                         norm.remove_extra_whitespaces, norm.escape_whitespaces)
    assert norm.name == "nmt_nfkc" and len(ours.precompiled_charsmap) > 100_000  # the character map is there


def test_another_writers_field_order_reads_the_same(folders, tmp_path):
    """Fields in another order, an unknown field, a NORMAL piece's type left out, the specs first and
    trainer_spec given twice (proto2 merges: the later unk_id wins): read field by field, the same model."""
    from sentencepiece import sentencepiece_model_pb2

    path = folders["deberta"] / "spm.model"
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    pieces = b""
    for p in proto.pieces:
        body = (_key(3, 0) + _varint(p.type) if p.type != 1 else b"") + _key(100, 0) + _varint(7) + \
            _length_field(1, p.piece.encode()) + _key(2, 5) + struct.pack("<f", p.score)
        pieces += _length_field(1, body)
    data = _length_field(3, proto.normalizer_spec.SerializeToString()) + _length_field(2, _key(40, 0) + _varint(0)) + \
        pieces + _length_field(2, proto.trainer_spec.SerializeToString())
    check = sentencepiece_model_pb2.ModelProto()
    check.ParseFromString(data)
    assert [(p.piece, p.score, p.type) for p in check.pieces] == [(p.piece, p.score, p.type) for p in proto.pieces]
    assert check.trainer_spec.unk_id == 3
    (tmp_path / "rebuilt.model").write_bytes(data)
    assert nlu_spm.read_model(tmp_path / "rebuilt.model") == nlu_spm.read_model(path)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _length_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


# --- what is refused, by name -------------------------------------------------------------------

def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _edit(folder: Path, name: str, **changes) -> None:
    path = folder / name
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("change, words", [
    (lambda f: _edit(f, "config.json", model_type="t5"), ["'t5'", "deberta-v2", "tokenizer.json"]),
    (lambda f: ((f / "config.json").unlink()), ["no config.json", "tokenizer.json"]),
    (lambda f: _edit(f, "tokenizer_config.json", tokenizer_class="T5Tokenizer"), ["T5Tokenizer", "tokenizer.json"]),
    (lambda f: _edit(f, "tokenizer_config.json", do_lower_case="yes"), ["tokenizer_config.json", "do_lower_case"]),
    (lambda f: _edit(f, "special_tokens_map.json", cls_token=5), ["special_tokens_map.json", "cls_token"]),
    (lambda f: _edit(f, "special_tokens_map.json", cls_token="[NOPE]"), ["cls_token", "[NOPE]"]),
    (lambda f: _edit(f, "tokenizer_config.json", add_prefix_space=False), ["add_prefix_space", "tokenizer.json"]),
    (lambda f: _edit(f, "added_tokens.json", **{"[MASK]": 1000}), ["[MASK]", "1000", "next free id"]),
    (lambda f: _edit(f, "added_tokens.json", extra=201), ["'extra'", "not a special token", "tokenizer.json"]),
    (lambda f: _edit(f, "tokenizer_config.json", added_tokens_decoder={"1": {"content": "[X]", "special": True}}),
     ["[X]", "[CLS]", "tokenizer.json"]),
    (lambda f: _edit(f, "config.json", model_type="xlm-roberta"), ["XLMRobertaConverter", "<unk> <s> </s>",
                                                                    "tokenizer.json"]),
    (lambda f: (f / "tokenizer_config.json").write_text("{nope"), ["tokenizer_config.json", "not valid JSON"]),
    (lambda f: (f / "added_tokens.json").write_text("[1, 2]"), ["added_tokens.json", "list"]),
])
def test_unsupported_or_broken_settings_are_refused_by_name(folders, tmp_path, change, words):
    folder = _copy(folders["deberta"], tmp_path)
    change(folder)
    with pytest.raises(ConversionError) as info:
        PieceTokenizer.from_folder(folder)
    assert all(word in str(info.value) for word in words), str(info.value)


@pytest.mark.parametrize("options, words", [
    ({"model_type": "bpe"}, ["a BPE SentencePiece model", "Unigram", "tokenizer.json"]),
    ({"model_type": "char"}, ["a character SentencePiece model", "tokenizer.json"]),
    ({"add_dummy_prefix": False}, ["add_dummy_prefix", "tokenizer.json"]),
    ({"remove_extra_whitespaces": False}, ["remove_extra_whitespaces", "tokenizer.json"]),
    ({"treat_whitespace_as_suffix": True}, ["treat_whitespace_as_suffix", "tokenizer.json"]),
])
def test_sentencepiece_models_the_converters_do_not_build_are_refused(tmp_path, options, words):
    model = train(vocab_size=150, **DEBERTA_LAYOUT, **options)
    folder = write_folder(tmp_path / "m", model, "spm.model", "deberta-v2", {}, DEBERTA_SPECIAL)
    with pytest.raises(ConversionError) as info:
        PieceTokenizer.from_folder(folder)
    assert str(folder / "spm.model") in str(info.value) and all(w in str(info.value) for w in words), str(info.value)


# --- hostile files ------------------------------------------------------------------------------

def _refused(folder: Path, data: bytes, file: str = "spm.model") -> str:
    (folder / file).write_bytes(data)
    with pytest.raises(ConversionError) as info:
        PieceTokenizer.from_folder(folder)
    assert str(folder / file) in str(info.value)
    return str(info.value)


def test_a_truncated_model_is_refused_naming_the_file(folders, models, tmp_path):
    folder = _copy(folders["deberta"], tmp_path)
    data = models["deberta"]
    cuts = sorted({*range(0, 4000, 37), *range(4000, len(data), len(data) // 60), len(data) - 1})
    for cut in cuts:
        assert "download the model again" in _refused(folder, data[:cut])


@pytest.mark.parametrize("data, words", [
    (b"", ["no trainer_spec"]),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 2464616\n", ["Git LFS pointer"]),
    (b"<!DOCTYPE html><html><body>Not Found</body></html>", ["wire type"]),
    (bytes(range(256)) * 8, ["not a SentencePiece model"]),
    (b"\x0a\xff\xff\xff\xff\x0f", ["runs past the end"]),  # a 4 GB piece in a 6-byte file
    (b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", ["longer than 10 bytes"]),
    (b"\x0a\x02\x0a\x00\x12\x00\x1a\x00", ["piece 0 is empty"]),
    (b"\x0a\x03\x0a\x01\xff\x12\x00\x1a\x00", ["not UTF-8"]),
    (b"\x0a\x08\x0a\x01a\x15\x00\x00\xc0\x7f\x12\x00\x1a\x00", ["score nan"]),
    (b"\x0a\x05\x0a\x01a\x18\x02\x0a\x05\x0a\x01a\x18\x01\x12\x00\x1a\x00", ["defined twice"]),
    (b"\x0a\x05\x0a\x01a\x18\x09\x12\x00\x1a\x00", ["type 9"]),
    (b"\x0a\x03\x0a\x01a\x12\x00\x1a\x00", ["unk_id 0 is not the id of its unknown piece"]),
    (b"\x0a\x05\x0a\x01a\x18\x02\x12\x02\x18\x02\x1a\x00", ["a BPE"]),
    (b"\x0a\x05\x0a\x01a\x18\x02\x12\x02\x18\x02\x1a\x00\x22", ["runs past the end"]),
    (b"\x0a\x05\x0a\x01a\x18\x02\x12\x00\x1a\x06\x12\x04\x04\x00\x00\x00", ["shorter than its header"]),
    (b"\x0a\x05\x0a\x01a\x18\x02\x12\x00\x1a\x0a\x12\x08\x40\x00\x00\x00\x00\x00\x00\x00", ["trie runs past"]),
])
def test_garbage_is_refused_naming_the_file(folders, tmp_path, data, words):
    folder = _copy(folders["deberta"], tmp_path)
    message = _refused(folder, data)
    assert all(word in message for word in words), message


def test_a_character_map_pointing_outside_itself_is_refused_before_tokenizers_can_panic(folders, tmp_path):
    """tokenizers reads such a map at encode time and panics (a BaseException no caller expects)."""
    from sentencepiece import sentencepiece_model_pb2

    folder = _copy(folders["deberta"], tmp_path)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((folder / "spm.model").read_bytes())
    charsmap = bytearray(proto.normalizer_spec.precompiled_charsmap)
    root_offset = b"\x00\xfc\xff\xff"  # the root's child block far past the trie's end
    strings_start = 4 + int.from_bytes(charsmap[:4], "little")
    for damaged, words in [(charsmap[:4] + root_offset + charsmap[8:], "points outside itself"),
                           (charsmap[:strings_start] + b"\xff" + charsmap[strings_start + 1:], "not UTF-8")]:
        proto.normalizer_spec.precompiled_charsmap = bytes(damaged)
        assert words in _refused(folder, proto.SerializeToString())


def test_pieces_long_enough_to_make_encoding_slow_are_refused(folders, models, tmp_path):
    """Issue 24, cause 10: 3,000 pieces "aa" ... "a" * 3001 made encoding 20,000 "a"s ~1,200x slower."""
    from sentencepiece import sentencepiece_model_pb2

    folder = _copy(folders["deberta"], tmp_path)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(models["deberta"])
    for n in range(2, 3002, 100):
        proto.pieces.add(piece="a" * n, score=-1.0, type=1)
    message = _refused(folder, proto.SerializeToString())
    assert "a piece of 2,902 characters" in message and "the limit is 64" in message
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(models["deberta"])
    proto.pieces.add(piece="a" * 64, score=-1.0, type=1)  # at the limit: read
    (folder / "spm.model").write_bytes(proto.SerializeToString())
    assert max(len(p[0]) for p in nlu_spm.read_model(folder / "spm.model").pieces) == 64


def test_sizes_are_bounded(folders, models, tmp_path, monkeypatch):
    folder = _copy(folders["deberta"], tmp_path)
    monkeypatch.setattr(nlu_spm, "MAX_PIECES", 100)
    assert "more than 100 pieces" in _refused(folder, models["deberta"])
    monkeypatch.setattr(nlu_spm, "MAX_MODEL_BYTES", 1000)
    assert "limit 1,000" in _refused(folder, models["deberta"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6),
       region=st.sampled_from(["anywhere", "charsmap"]))
def test_damaged_bytes_are_refused_or_tokenize_without_crashing(folders, models, tmp_path_factory, edits, region):
    """Random bytes overwritten anywhere, or in the character map's trie and strings: a
    ConversionError naming the file, or a tokenizer that encodes hostile text (never a panic)."""
    from sentencepiece import sentencepiece_model_pb2

    folder = tmp_path_factory.mktemp("damaged")
    for name in ("config.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(folders["deberta"] / name, folder / name)
    data = bytearray(models["deberta"])
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(bytes(data))
    start = data.index(proto.normalizer_spec.precompiled_charsmap) if region == "charsmap" else 0
    span = len(proto.normalizer_spec.precompiled_charsmap) if region == "charsmap" else len(data)
    for where, value in edits:
        data[start + int(where * span)] = value
    (folder / "spm.model").write_bytes(bytes(data))
    try:
        tok = PieceTokenizer.from_folder(folder)
    except ConversionError as exc:
        assert str(folder / "spm.model") in str(exc)
        return
    tok.encode(EXTRA_TEXTS + MORE_TEXTS + ["".join(map(chr, range(0x20, 0x3000, 5)))])


# --- the whole path -----------------------------------------------------------------------------

def test_a_deberta_v3_folder_with_only_spm_model_loads_and_runs(folders, tmp_path, isolated_cache, pairs):
    from test_family_deberta import build_deberta

    import nlu_lite

    ours, ref = pairs["deberta"]
    folder, _ = build_deberta(tmp_path / "ckpt", vocab_size=ours.vocab_size + 2)
    for name in ("spm.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        shutil.copy(folders["deberta"] / name, folder / name)
    pipe = nlu_lite.load(path=folder)
    assert pipe.tokenizer.source == str(folder / "spm.model")
    text = "Hello, world! Dr. Smith's café costs $3.50."
    assert pipe.tokenizer.encode([text]).ids.tolist() == ref(text, add_special_tokens=False)["input_ids"]
    df = pipe.predict(text)
    assert df.token.tolist()[:4] == ["Hello", ",", "world", "!"]
    assert not np.isnan(nlu_lite.to_matrix(df)).any()  # every word has a vector


def test_a_deberta_repo_with_only_spm_model_loads_by_its_hub_id(folders, tmp_path, isolated_cache, pairs, monkeypatch):
    from _hub_server import HubServer
    from test_family_deberta import build_deberta

    import nlu_lite

    ours, _ = pairs["deberta"]
    folder, _ = build_deberta(tmp_path / "ckpt", vocab_size=ours.vocab_size + 2)
    for name in ("spm.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        shutil.copy(folders["deberta"] / name, folder / name)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    with HubServer() as server:
        server.add_repo("org/tiny-deberta", folder)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        pipe = nlu_lite.load("org/tiny-deberta")
        assert pipe.spec.architecture == "deberta-v2" and pipe.tokenizer.source.endswith("spm.model")
        local = nlu_lite.load(path=folder)
        text = "Hello, world! Dr. Smith's café."
        np.testing.assert_array_equal(nlu_lite.to_matrix(pipe.predict(text)), nlu_lite.to_matrix(local.predict(text)))
        assert server.count("GET", "tokenizer.json") == 0  # the repo has none: asked once by HEAD, never fetched
