"""Which ONNX graph should nlu_lite.convert write? Fused com.microsoft kernels vs standard ops.

Builds a small BERT (4 layers, hidden 512, 8 heads, intermediate 2048, vocab 30522) with
random weights in numpy, converts it with each graph variant, and times onnxruntime on
batches of realistic sentence lengths (padded to the longest in the batch). Also shows:

- which fused kernels onnxruntime ends up running (its optimized graph, op counts);
- that the extra outputs (hidden_state_i, pooler_output) cost nothing when a run asks
  only for last_hidden_state ("lean" = the same graph with last_hidden_state as its only output);
- the error of FastGelu (tanh GELU) against exact erf GELU, the reason it is not used.

Run: .venv/bin/python benchmarks/engine_graph.py [--threads 2] [--batch 32] [--repeats 30] [--no-spinning]
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlu_lite.convert.bert import BertConfig, build_model, expected_shapes  # noqa: E402
from nlu_lite.runtime import DISABLED_OPTIMIZERS, session_options  # noqa: E402

CONFIG = BertConfig(vocab_size=30522, hidden_size=512, num_layers=4, num_heads=8, intermediate_size=2048)
FUSED_OPS = ("Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "FusedMatMul",
             "LayerNormalization", "MatMul", "Softmax", "Erf", "Transpose")


def random_weights(config: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in expected_shapes(config, with_pooler=True).items():
        if name.endswith("LayerNorm.weight"):
            weights[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            weights[name] = (0.05 * rng.standard_normal(shape)).astype(np.float32)
    return weights


def sentence_batches(n_batches: int, batch: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Word-piece lengths like English sentences (median ~26, long tail to 128), padded per batch."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        lengths = np.clip(rng.lognormal(np.log(26), 0.5, batch).astype(int), 4, 128)
        width = int(lengths.max())
        ids = rng.integers(1000, CONFIG.vocab_size, (batch, width), dtype=np.int64)
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        batches.append((ids * mask, mask))
    return batches


def lean(model):
    """The same model with last_hidden_state as its only output."""
    import onnx

    lean_model = onnx.ModelProto()
    lean_model.CopyFrom(model)
    keep = [o for o in lean_model.graph.output if o.name == "last_hidden_state"]
    del lean_model.graph.output[:]
    lean_model.graph.output.extend(keep)
    return lean_model


def fast_gelu(model):
    """The fused model with BiasGelu (exact erf) swapped for FastGelu (tanh approximation)."""
    import onnx

    approx = onnx.ModelProto()
    approx.CopyFrom(model)
    for node in approx.graph.node:
        if node.op_type == "BiasGelu":
            node.op_type = "FastGelu"
    return approx


def session(model, threads: int, workdir: Path, name: str, spinning: bool):
    import onnx
    import onnxruntime as ort

    path = workdir / f"{name}.onnx"
    onnx.save_model(model, str(path))
    optimized = workdir / f"{name}.opt.onnx"
    opts = session_options(threads=threads, optimized_model_path=optimized)
    if not spinning:  # idle threads sleep instead of spinning, so CPU time counts only work
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))  # as nlu_lite.runtime opens it
    ops = collections.Counter(n.op_type for n in onnx.load_model(str(optimized), load_external_data=False).graph.node)
    return sess, ops


def time_interleaved(sessions: dict, batches, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) per batch. The variants take turns on each batch, so load drift
    hits all alike; CPU time (this process, all its threads) is the steadier figure on a
    shared machine, wall time the one a user waits for.
    """
    feeds = [{"input_ids": ids, "attention_mask": mask} for ids, mask in batches]
    for sess in sessions.values():
        for feed in feeds[:3]:
            sess.run(["last_hidden_state"], feed)
    wall: dict[str, list[float]] = {name: [] for name in sessions}
    cpu: dict[str, list[float]] = {name: [] for name in sessions}
    for r in range(repeats):
        feed = feeds[r % len(feeds)]
        order = list(sessions) if r % 2 == 0 else list(reversed(sessions))
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            sessions[name].run(["last_hidden_state"], feed)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]) * 1000, statistics.median(cpu[name]) * 1000) for name in sessions}


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-spinning", action="store_true", help="idle onnxruntime threads sleep (cleaner CPU times)")
    args = parser.parse_args()

    weights = random_weights(CONFIG)
    batches = sentence_batches(10, args.batch)
    widths = [ids.shape[1] for ids, _ in batches]
    print(f"onnxruntime {ort.__version__}; small BERT L{CONFIG.num_layers}/H{CONFIG.hidden_size}/A{CONFIG.num_heads}; "
          f"batch {args.batch}; padded widths {min(widths)}-{max(widths)} (median {int(np.median(widths))}); "
          f"{args.threads} threads{' (no spinning)' if args.no_spinning else ''}; median of {args.repeats} runs\n")
    models = {
        "standard": build_model(CONFIG, weights, graph="standard"),
        "fused": build_model(CONFIG, weights, graph="fused"),
    }
    models["standard-lean"] = lean(models["standard"])
    models["fused-lean"] = lean(models["fused"])
    models["fused+FastGelu"] = fast_gelu(models["fused"])

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        sessions, op_counts = {}, {}
        for name, model in models.items():
            sessions[name], op_counts[name] = session(model, args.threads, Path(tmp), name.replace("+", "_"), not args.no_spinning)
        timings = time_interleaved(sessions, batches, args.repeats)
        for name, sess in sessions.items():
            outs = [sess.run(["last_hidden_state"], {"input_ids": i, "attention_mask": m})[0] for i, m in batches[:3]]
            results[name] = (timings[name], op_counts[name], outs)

    reference = results["standard"][2]
    header = (f"{'graph':<16}{'wall ms':>9}{'cpu ms':>8}{'sent/s':>8}{'max|diff| vs standard':>23}"
              "   ops after onnxruntime's optimisation")
    print(header)
    print("-" * len(header))
    for name, ((wall, cpu), ops, outs) in results.items():
        diff = max(float(np.abs(o - r)[m.astype(bool)].max()) for o, r, (_, m) in zip(outs, reference, batches))
        shown = ", ".join(f"{op} {ops[op]}" for op in FUSED_OPS if ops.get(op))
        print(f"{name:<16}{wall:>9.1f}{cpu:>8.1f}{args.batch / wall * 1000:>8.0f}{diff:>23.2e}   {shown}")


if __name__ == "__main__":
    main()
