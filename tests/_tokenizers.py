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


def build_bpe_tokenizer(folder: Path, vocab_size: int = 600, framing: str = "roberta") -> Path:
    """A byte-level BPE, offsets trimmed of the leading space. ``framing``: ``"roberta"`` (``<s> … </s>``),
    ``"eos"`` (``… <|endoftext|>``, as Qwen3-Embedding's tokenizer appends it) or ``"bert"``
    (``[CLS] … [SEP]``, as ModernBERT's)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing, TemplateProcessing

    folder.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    specials = {"roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "eos": ["<|endoftext|>", "<|im_start|>"],
                "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]}[framing]
    tok.train_from_iterator(training_lines(), vocab_size=vocab_size, min_frequency=1, special_tokens=specials,
                            show_progress=False)
    inner = tok._tokenizer
    if framing == "roberta":
        inner.post_processor = RobertaProcessing(("</s>", inner.token_to_id("</s>")), ("<s>", inner.token_to_id("<s>")),
                                                 trim_offsets=True, add_prefix_space=False)
        special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                   "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
    elif framing == "eos":
        eos = inner.token_to_id("<|endoftext|>")
        inner.post_processor = TemplateProcessing(single="$A <|endoftext|>", pair="$A <|endoftext|> $B <|endoftext|>",
                                                  special_tokens=[("<|endoftext|>", eos)])
        special = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    else:
        cls, sep = inner.token_to_id("[CLS]"), inner.token_to_id("[SEP]")
        inner.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                  special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        special = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                   "mask_token": "[MASK]"}
    inner.save(str(folder / "tokenizer.json"))
    _write_config(folder, **special)
    return folder


def build_unigram_tokenizer(folder: Path, vocab_size: int = 400, framing: str = "xlmr") -> Path:
    """A SentencePiece Unigram (Metaspace ``▁``). ``framing``: ``"xlmr"`` (``<s> … </s>``), ``"xlnet"``
    (``… <sep> <cls>``, at the end) or ``"t5"`` (``… </s>``)."""
    from tokenizers import SentencePieceUnigramTokenizer
    from tokenizers.processors import TemplateProcessing

    folder.mkdir(parents=True, exist_ok=True)
    tok = SentencePieceUnigramTokenizer()
    specials = {"xlmr": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                "xlnet": ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>"],
                "t5": ["<pad>", "</s>", "<unk>"]}[framing]
    tok.train_from_iterator(training_lines(), vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                            show_progress=False)
    inner = tok._tokenizer
    ids = {t: inner.token_to_id(t) for t in specials}
    if framing == "xlmr":
        inner.post_processor = TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                  special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
        special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                   "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
    elif framing == "xlnet":
        inner.post_processor = TemplateProcessing(single="$A:0 <sep>:0 <cls>:2", pair="$A:0 <sep>:0 $B:1 <sep>:1 <cls>:2",
                                                  special_tokens=[("<sep>", ids["<sep>"]), ("<cls>", ids["<cls>"])])
        special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                   "cls_token": "<cls>", "sep_token": "<sep>", "mask_token": "<mask>"}
    else:
        inner.post_processor = TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                  special_tokens=[("</s>", ids["</s>"])])
        special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    inner.save(str(folder / "tokenizer.json"))
    _write_config(folder, **special)
    return folder
