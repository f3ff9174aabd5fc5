"""Tokenizers of every kind nlu_lite reads, trained in the test session (never downloaded).

Each builder writes ``tokenizer.json`` (with the post-processor that frames a sequence, as the
model's own file has it) and a ``tokenizer_config.json`` that makes transformers load that very
file as its fast tokenizer (the reference).
"""
from __future__ import annotations

import json
from pathlib import Path

from conftest import _corpus

EXTRA_TEXTS = [
    "Hello, world! Dr. Smith's café costs $3.50 (approx.) — naïve résumé.",
    "東京は大きい。 中文字 テスト",
    "שלום עולם! مرحبا بالعالم",
    "emoji 😀👍🏽 and flags 🇫🇷 in text",
    "combining e\u0301 and a lone \u0301 mark",
    "zero\u200bwidth\ufeffmarks and \x00 control \x07 chars",
    "[SEP] [CLS] <s> </s> <pad> <unk> are just text",
    "tabs\tand\nnewlines\r\n  and   spaces",
]


def training_lines() -> list[str]:
    return _corpus() + EXTRA_TEXTS * 3


def _write_config(folder: Path, **special: str) -> None:
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def build_bpe_tokenizer(folder: Path, vocab_size: int = 600) -> Path:
    """A RoBERTa-style byte-level BPE: ``<s> … </s>``, offsets trimmed of the leading space."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    folder.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(training_lines(), vocab_size=vocab_size, min_frequency=1, special_tokens=specials,
                            show_progress=False)
    inner = tok._tokenizer
    inner.post_processor = RobertaProcessing(("</s>", inner.token_to_id("</s>")), ("<s>", inner.token_to_id("<s>")),
                                             trim_offsets=True, add_prefix_space=False)
    inner.save(str(folder / "tokenizer.json"))
    _write_config(folder, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                  cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    return folder


def build_unigram_tokenizer(folder: Path, vocab_size: int = 400) -> Path:
    """An XLM-R-style SentencePiece Unigram (Metaspace ``▁``): ``<s> … </s>``."""
    from tokenizers import SentencePieceUnigramTokenizer
    from tokenizers.processors import TemplateProcessing

    folder.mkdir(parents=True, exist_ok=True)
    tok = SentencePieceUnigramTokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(training_lines(), vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                            show_progress=False)
    inner = tok._tokenizer
    bos, eos = inner.token_to_id("<s>"), inner.token_to_id("</s>")
    inner.post_processor = TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                              special_tokens=[("<s>", bos), ("</s>", eos)])
    inner.save(str(folder / "tokenizer.json"))
    _write_config(folder, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                  cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    return folder
