"""int8 that checks itself: when a model is quantised, its int8 graph is measured against fp32 on a shipped
corpus, and kept more in fp32 until it meets a bound, or refused with the numbers.

The corpus (``nlu_lite/data/int8_check.txt``: 35 texts, 14 languages and scripts, chat, code, logs, legal,
medical, prices, one-word texts) is embedded one sequence at a time in fp32 and in int8: each text alone, and
the whole corpus run together and cut into windows of the model's full length (long windows are where a deep
model's int8 error gathers). Figures: the cosine of each position's final vector to fp32's (mean and min over
all positions) and of each sequence's mean-pooled vector (mean). The bound, ``NLU_LITE_INT8_BOUND`` or
:data:`DEFAULT_BOUND`, is per-token mean and min (issue 22's: 0.998 and 0.98).

Where the int8 graph misses it, MatMuls fed by a GELU/ReLU output (the feed-forward output projection,
measured on all-mpnet-base-v2 as the largest share of int8's error for a quarter of its MatMuls) stay fp32,
the costliest first: a third of them, then two thirds, ranked by their simulated int8 error on the fp32
graph's own activations for the check corpus (:func:`nlu_lite.convert.int8.bounded_errors`; one fp32 run,
no graph built per MatMul), then all of them; then also those fed by a LayerNorm output (Q/K/V and
feed-forward input). On all-mpnet-base-v2 the third (layers 5, 4, 6, 0) meets the bound at 2.3x fp32 where
all twelve ran 1.7x (``benchmarks/int8.md``). If the last step too misses, int8 is refused: the report
(every step's figures) is stored with the cached graph, so a refusal is not measured again, and
``load(..., precision='int8')`` raises naming the figures and the fix.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConversionError

logger = logging.getLogger(__name__)

CHECK_VERSION = 2  # 2: the ranked steps between nothing and every GELU/ReLU-fed MatMul kept fp32
DEFAULT_BOUND = (0.998, 0.98)  # per-token cosine to fp32: mean, min
BOUNDED = ("gelu", "relu")
# step by step: (input kinds kept fp32, share of the GELU/ReLU-fed MatMuls kept fp32, costliest first)
ESCALATION = (((), 0.0), ((), 1 / 3), ((), 2 / 3), (BOUNDED, 0.0), ((*BOUNDED, "ln"), 0.0))
MAX_WINDOWS = 4  # full-length windows of the joined corpus


def corpus() -> list[str]:
    """The shipped check corpus, one text per line."""
    text = resources.files("nlu_lite").joinpath("data", "int8_check.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def bound_from_env() -> tuple[float, float]:
    """``NLU_LITE_INT8_BOUND="mean,min"`` (e.g. ``0.997,0.6``), else :data:`DEFAULT_BOUND`."""
    raw = os.environ.get("NLU_LITE_INT8_BOUND", "").strip()
    if not raw:
        return DEFAULT_BOUND
    try:
        mean, low = (float(part) for part in raw.split(","))
    except ValueError:
        raise ConversionError(f"NLU_LITE_INT8_BOUND={raw!r}: two numbers 'mean,min', e.g. '0.998,0.98'") from None
    if not (0 < low <= mean <= 1):
        raise ConversionError(f"NLU_LITE_INT8_BOUND={raw!r}: 0 < min <= mean <= 1")
    return mean, low


def _sequences(tokenizer: Any, max_length: int) -> list[list[int]]:
    """Each corpus text framed alone, then the joined corpus cut into full-length windows."""
    framing = tokenizer.framing
    room = max(1, max_length - framing.overhead)
    texts = corpus()
    pieces = tokenizer.encode(texts, words=False)
    out, joined = [], []
    for t in range(len(texts)):
        ids = pieces.ids[pieces.text_piece_start[t]:pieces.text_piece_start[t + 1]].tolist()
        out.append([*framing.prefix, *ids[:room], *framing.suffix])
        joined.extend(ids)
    while len(joined) < room * MAX_WINDOWS:  # enough text for the long windows
        joined = joined + joined
    for w in range(MAX_WINDOWS):
        out.append([*framing.prefix, *joined[w * room:(w + 1) * room], *framing.suffix])
    return out


def _positions(path: Path) -> int | None:
    """The positions the graph takes (its nlu_lite metadata's ``max_position_embeddings``), without its weights."""
    import onnx

    from .convert.graph import nlu_metadata

    value = nlu_metadata(onnx.load_model(str(path), load_external_data=False)).get("max_position_embeddings")
    return int(value) if value else None


def _states(path: Path, sequences: list[list[int]], threads: int | None) -> list[np.ndarray]:
    from .runtime import OnnxEncoder

    encoder = OnnxEncoder.from_path(path, threads=threads)
    states = []
    for seq in sequences:
        ids = np.asarray([seq], dtype=np.int64)
        states.append(encoder.run(ids, np.ones_like(ids))["last_hidden_state"][0].astype(np.float64))
    return states


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    denominator = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=-1) / denominator, 1.0)


def measure(fp32: list[np.ndarray], int8: list[np.ndarray]) -> dict[str, float]:
    """Per-position cosine (mean, min) and per-sequence mean-pooled cosine (mean) of int8 to fp32."""
    tokens = np.concatenate([_cosines(q, f) for q, f in zip(int8, fp32)])
    pooled = _cosines(np.stack([q.mean(axis=0) for q in int8]), np.stack([f.mean(axis=0) for f in fp32]))
    return {"token_mean": round(float(tokens.mean()), 6), "token_min": round(float(tokens.min()), 6),
            "sentence_mean": round(float(pooled.mean()), 6), "positions": int(tokens.size)}


@dataclass(frozen=True)
class Int8Check:
    """The check :func:`nlu_lite.convert.ensure_onnx` runs on a new int8 graph (see the module docstring)."""

    load_tokenizer: Any  # a callable giving the model's PieceTokenizer: built only when a check runs
    max_length: int
    bound: tuple[float, float] = DEFAULT_BOUND
    threads: int | None = None

    @property
    def key(self) -> dict[str, Any]:
        digest = hashlib.sha256("\n".join(corpus()).encode("utf-8")).hexdigest()
        return {"version": CHECK_VERSION, "corpus_sha256": digest, "bound": list(self.bound),
                "max_length": int(self.max_length)}

    def __call__(self, fp32_path: Path, int8_path: Path, requantize: Any) -> dict[str, Any]:
        sequences = _sequences(self.load_tokenizer(),
                               min(self.max_length, _positions(Path(fp32_path)) or self.max_length))
        reference = _states(Path(fp32_path), sequences, self.threads)
        mean_bound, min_bound = self.bound
        steps: list[dict[str, Any]] = []
        ranking: dict[str, float] | None = None
        for i, (kinds, share) in enumerate(ESCALATION):
            weights: list[str] = []
            if share:
                if ranking is None:  # only where keeping nothing missed: one fp32 run of the check corpus
                    ranking = _ranking(Path(fp32_path), sequences, self.threads)
                weights = list(ranking)[:math.ceil(share * len(ranking))]
                # nothing to rank, or the same as the step keeping every one of them (a third and two thirds
                # differ for two or more)
                if not weights or len(weights) == len(ranking):
                    continue
            kept = [*kinds, *weights]
            if i:
                requantize(kinds, weights)
            label = (f"{len(weights)} of {len(ranking or ())} GELU/ReLU-fed MatMuls (costliest)" if weights
                     else " + ".join(kinds) or "nothing")
            figures = {"kept_fp32": kept, "label": label,
                       **measure(reference, _states(Path(int8_path), sequences, self.threads))}
            steps.append(figures)
            logger.info("int8 check, kept fp32 %s: %s", label, figures)
            if figures["token_mean"] >= mean_bound and figures["token_min"] >= min_bound:
                return {**self.key, "accepted": True, "kept_fp32": kept, "steps": steps, **_ranked(ranking)}
        return {**self.key, "accepted": False, "kept_fp32": steps[-1]["kept_fp32"], "steps": steps, **_ranked(ranking)}


def _ranking(fp32_path: Path, sequences: list[list[int]], threads: int | None) -> dict[str, float]:
    """Each GELU/ReLU-fed MatMul's simulated int8 error on the check sequences, costliest first."""
    import onnx

    from .convert.graph import nlu_metadata
    from .convert.int8 import bounded_errors
    from .convert.store import family_int8_plan

    model = onnx.load_model(str(fp32_path))
    metadata = nlu_metadata(model)
    feeds = ({"input_ids": np.asarray([s], np.int64), "attention_mask": np.ones((1, len(s)), np.int64)}
             for s in sequences)
    return bounded_errors(model, feeds, family_int8_plan(metadata)[0], threads or 0)  # 0: onnxruntime picks


def _ranked(ranking: dict[str, float] | None) -> dict[str, Any]:
    """The report's ``ranking``: [weight, simulated error] pairs, costliest first (where the ranked steps ran)."""
    return {} if ranking is None else {"ranking": [[name, round(error, 6)] for name, error in ranking.items()]}


def _label(step: dict[str, Any]) -> str:
    return step.get("label") or " + ".join(step["kept_fp32"]) or "nothing"


def refusal(name: str, report: dict[str, Any]) -> ConversionError:
    """The error for a model whose int8 misses the bound at every step."""
    mean_bound, min_bound = report["bound"]
    tried = "; ".join(f"{_label(s)} kept fp32: per-token cosine mean "
                      f"{s['token_mean']:.5f}, min {s['token_min']:.4f}" for s in report["steps"])
    return ConversionError(
        f"int8 of {name} misses its accuracy bound (per-token cosine to fp32 >= {mean_bound} mean, >= {min_bound} "
        f"min, on nlu_lite's check corpus): {tried}. Use precision='fp32' (exact), or accept the figures with "
        f"NLU_LITE_INT8_BOUND='<mean>,<min>' (e.g. '{report['steps'][-1]['token_mean']:.4f},"
        f"{max(report['steps'][-1]['token_min'] - 0.01, 0.01):.2f}')")


def summary(report: dict[str, Any] | None) -> str:
    """One line for print_info() and repr: the accepted step's figures."""
    if not report:
        return "not checked"
    step = next((s for s in report["steps"] if s["kept_fp32"] == report["kept_fp32"]), report["steps"][-1])
    kept = _label(step)
    return (f"per-token cosine to fp32 {step['token_mean']:.5f} mean, {step['token_min']:.4f} min; sentence "
            f"{step['sentence_mean']:.5f}; {kept} kept fp32 ({step['positions']:,} positions of the check corpus)")
