"""Helpers for the engine tests: the transformers reference, padded batches, crafted pickles."""
from __future__ import annotations

import collections
import io
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SENTENCES = Path(__file__).parent / "data" / "en_sentences.txt"


def padded_batch(vocab_size: int, lengths: list[int], seed: int = 0, *, pad: int = 0,
                 low: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random ids from ``low`` (default ``pad + 1``: never the pad id inside a row) up to ``vocab_size``,
    right-padded with ``pad`` to the longest length."""
    rng = np.random.default_rng(seed)
    ids = np.full((len(lengths), max(lengths)), pad, np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(pad + 1 if low is None else low, vocab_size, n)
        mask[row, :n] = 1
    return ids, mask


def scratch_dir(request, tmp_path_factory, name: str) -> Path:
    """A temporary folder removed when the requesting fixture is torn down (a module-scoped fixture: at the end of
    its module), so base-size checkpoints and their conversions do not pile up on disk for the whole session."""
    folder = tmp_path_factory.mktemp(name)
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    return folder


def save_state(state: dict, folder: Path, weights: str = "safetensors") -> None:
    """A state_dict as the checkpoint's weights file: ``model.safetensors`` or ``pytorch_model.bin``."""
    import torch

    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")


def reference(folder: Path, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """transformers' BertModel on PyTorch, loaded from the same folder: the numbers to match."""
    import torch
    from transformers import BertModel

    if (folder / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), "pt") as st:
            names = list(st.keys())
    else:
        names = list(torch.load(folder / "pytorch_model.bin", weights_only=True))
    with_pooler = any(n.endswith("pooler.dense.weight") for n in names)  # else transformers adds a random one
    model = BertModel.from_pretrained(folder, add_pooling_layer=with_pooler).eval()
    return model_outputs(model, ids, mask, token_type_ids=torch.zeros_like(torch.from_numpy(ids)))


def model_outputs(model, ids: np.ndarray, mask: np.ndarray, **extra) -> dict[str, np.ndarray]:
    """A transformers model's outputs on PyTorch by nlu_lite's output names: ``last_hidden_state``,
    ``hidden_state_{i}`` and, when the model has a pooler, ``pooler_output``."""
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), output_hidden_states=True,
                    **extra)
    result = {"last_hidden_state": out.last_hidden_state.numpy()}
    result.update({f"hidden_state_{i}": h.numpy() for i, h in enumerate(out.hidden_states)})
    if getattr(out, "pooler_output", None) is not None:
        result["pooler_output"] = out.pooler_output.numpy()
    return result


def max_diff_on_tokens(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Max |a - b| over real (unpadded) tokens only: padded positions' outputs are irrelevant."""
    return float(np.abs(a - b)[mask.astype(bool)].max())


def cosine_per_token(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    real = mask.astype(bool)
    x, y = a[real].astype(np.float64), b[real].astype(np.float64)
    return (x * y).sum(-1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(y, axis=-1)


def english_batch(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """tests/data/en_sentences.txt tokenised with the model's own tokenizer.json, padded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding()
    lines = [s for s in SENTENCES.read_text(encoding="utf-8").splitlines() if s.strip()]
    encoded = tokenizer.encode_batch(lines)
    return (np.array([e.ids for e in encoded], np.int64), np.array([e.attention_mask for e in encoded], np.int64))


# --- crafted torch checkpoints ---------------------------------------------------------


@dataclass
class FakeStorage:
    key: str
    numel: int


@dataclass
class FakeTensor:
    storage: FakeStorage
    offset: int
    size: tuple
    stride: tuple


def write_torch_zip(path: Path, state: dict, storages: dict[str, bytes]) -> Path:
    """A zip checkpoint laid out exactly as torch.save writes it, with records we choose.

    ``state`` values may be FakeTensor; they pickle as torch's own ``_rebuild_tensor_v2``
    calls on ``torch.FloatStorage`` references, so the file can describe tensors that
    torch.save would never write (out of bounds, missing storage, ...).
    """
    import torch

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, FakeStorage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return None

        def reducer_override(self, obj):
            if isinstance(obj, FakeTensor):
                args = (obj.storage, obj.offset, obj.size, obj.stride, False, collections.OrderedDict())
                return torch._utils._rebuild_tensor_v2, args
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buffer.getvalue())
        zf.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            zf.writestr(f"archive/data/{key}", raw)
    return path
