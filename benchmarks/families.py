"""Every family at base shape: nlu_lite (fp32 and int8) against transformers, token level, one run.

    python -m benchmarks.families            # BERT ... Qwen3, 8 families; writes benchmarks/families.md
    python -m benchmarks.families --families bert,roberta,mpnet   # about 10 minutes on 2 cores
    python -m benchmarks.families --n 64 --repeats 1   # a smoke test of every step

Issue 12 asks that no family be slower, relative to transformers, than BERT: the table
gives each family's speed-up over transformers (input order and length-sorted) and, to read
that goal off, the speed-up divided by BERT's from the same run. The int8 column (issue 15)
gives ``precision='int8'``'s speed at base shape, where the GEMMs dominate more than in MiniLM.

Models (``benchmarks/models.py``): hidden 768, 12 layers, 12 heads, intermediate 3072, random
seeded weights (LayerNorms and biases perturbed); BERT with the real bert-base-uncased
WordPiece vocabulary, RoBERTa and MPNet with one byte-level BPE trained on the benchmark
corpus. Corpus: the first ``--n`` sentences of ``benchmarks/corpus.py``'s synthetic corpus
(the one ``benchmarks.run`` uses). Each measurement runs in its own child process
(``benchmarks/worker.py``), exactly like ``benchmarks.run``'s token-level rows: nlu_lite fp32
``load(path=folder, threads=2)`` + ``predict(output_level='token')`` against transformers'
``AutoTokenizer`` + ``AutoModel`` per batch of 32 in input order and sorted by length, median of
``--repeats`` timed calls after a warm-up. The transformers side takes, for each of nlu_lite's
words, the first piece whose character span overlaps it (nlu_lite's definition), so both
sides return the same rows; the per-token cosine between them is reported as a check that
the converted graph computes the same model.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import corpus as corpora
from . import models
from .run import ROOT, _env, _load_average, _machine, measured_child

FAMILIES = ("bert", "roberta", "mpnet", "xlnet", "longformer", "t5", "modernbert", "qwen3")
SYSTEMS = ("nlu_fp32", "hf_input", "hf_sorted", "nlu_int8")
TITLES = {"bert": "BERT", "roberta": "RoBERTa", "mpnet": "MPNet", "xlnet": "XLNet", "longformer": "Longformer",
          "t5": "T5 encoder", "modernbert": "ModernBERT", "qwen3": "Qwen3 (decoder)"}
# the transformers class each family's checkpoint is run with, and which piece gives a word's vector
HF_CLASS = {"t5": "T5EncoderModel"}
PIECE = {"qwen3": "overlap_last"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def supported() -> list[str]:
    """The model types this checkout's nlu_lite converts (asked in a child: its converters may be new)."""
    code = "import json, nlu_lite.convert.families as f; print(json.dumps(f.supported_model_types()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(work: Path, n: int, families: tuple[str, ...] | list[str] = FAMILIES) -> dict:
    """Checkpoints (built once into ``work``), the corpus subset as JSON, and each family's piece count."""
    from tokenizers import Tokenizer

    work.mkdir(parents=True, exist_ok=True)
    bert = models.base_bert(work)
    wordpiece = Tokenizer.from_file(str(bert / "tokenizer.json"))
    full = corpora.synthetic(wordpiece, n=2000)  # the same corpus as benchmarks.run's `synthetic`
    bpe = models.bpe_tokenizer(work, full.sentences + corpora._topics_texts())
    folders = {"bert": bert}
    for family in families:
        if family in ("roberta", "mpnet"):
            folders[family] = getattr(models, f"base_{family}")(work, bpe)
        elif family != "bert":
            log(f"{family}: building its base-shape checkpoint (once)")
            folders[family] = models.base_family(work, family, bpe)
    texts = full.sentences[:n]
    path = work / "families" / f"synthetic_first{n}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(texts), encoding="utf-8")
    pieces = {}
    for family, folder in folders.items():
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        pieces[family] = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return {"folders": {k: str(v) for k, v in folders.items()}, "texts": str(path), "n": len(texts),
            "pieces": pieces, "bpe_vocab": Tokenizer.from_file(str(bpe / "tokenizer.json")).get_vocab_size(),
            "corpus": full.description}


def convert(folder: str, work: Path) -> float:
    """Convert (fp32, the default graph) into the benchmark's cache, outside the timed runs."""
    code = f"from nlu_lite.convert import ensure_onnx; ensure_onnx({folder!r}, precision='fp32')"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(work), capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"converting {folder} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t


def measure(meta: dict, families: list[str], work: Path, args) -> list[dict]:
    rows = []
    for family in families:
        folder = meta["folders"][family]
        log(f"{family}: converting")
        convert_s = convert(folder, work)
        for system in SYSTEMS:
            job = {"system": system, "model": folder, "texts": meta["texts"], "level": "token",
                   "repeats": args.repeats, "threads": args.threads, "batch_size": args.batch_size,
                   "save": str(work / f"vectors_{family}_{system}.npy")}
            if system.startswith("hf"):
                job.update(model_class=HF_CLASS.get(family, "AutoModel"), first_piece=PIECE.get(family, "overlap"))
            t = time.perf_counter()
            res = measured_child(["benchmarks.worker", json.dumps(job)], work, log, retries=args.retries,
                                 max_wait=args.max_wait)
            res.update(family=family, median_s=statistics.median(res["times"]), convert_s=convert_s)
            log(f"  {system}: median {res['median_s']:.2f} s of {[round(x, 2) for x in res['times']]} "
                f"(others {res['other_cpu']:.0%}, {time.perf_counter() - t:.0f} s with load)")
            rows.append(res)
    return rows


def cosines(work: Path, family: str, other: str = "hf_input") -> dict:
    """Per-token cosine of ``other`` (transformers in input order: the same rows, the same model) to nlu_lite fp32."""
    a = np.load(work / f"vectors_{family}_nlu_fp32.npy")
    b = np.load(work / f"vectors_{family}_{other}.npy")
    if a.shape != b.shape:
        return {"error": f"rows differ: nlu_lite {a.shape}, transformers {b.shape}"}
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"mean": float(cos.mean()), "min": float(cos.min()), "n": len(cos),
            "max_abs": float(np.abs(a - b).max())}


def report(meta: dict, rows: list[dict], acc: dict, command: str) -> str:
    m = meta["machine"]
    by = {(r["family"], r["system"]): r for r in rows}
    families = [f for f in FAMILIES if (f, "nlu_fp32") in by]
    out = [f"## nlu_lite per family at base shape, token level: {', '.join(TITLES[f] for f in families)}", ""]
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores ({m.get('isa', '?')}); Python {m['python']}, "
               f"onnxruntime {m['onnxruntime']}, torch {m['torch']}, transformers {m['transformers']}, "
               f"tokenizers {m['tokenizers']}. Threads: {meta['threads']} for every system; batch "
               f"{meta['batch_size']}; median of {meta['repeats']} timed runs after a warm-up. Load average at "
               f"start {meta['load_start']}, at end {meta['load_end']}. {meta['date']}, {meta['total_min']:.1f} min.")
    out.append("")
    out.append("Models: random seeded weights (LayerNorms and biases perturbed). BERT, RoBERTa, MPNet: hidden 768, "
               "12 layers, 12 heads, intermediate 3072, with pooler; BERT: vocab 30,522, the real bert-base-uncased "
               "WordPiece vocabulary. RoBERTa (max_position_embeddings 514, type_vocab_size 1, pad 1) and MPNet "
               f"(max_position_embeddings 514): one byte-level BPE of {meta['bpe_vocab']:,} pieces trained with "
               "`tokenizers` on the benchmark corpus, `<s> … </s>`. The families of issue 21 on the same BPE with "
               "their own framing, each at its best-known checkpoint's shape (`benchmarks/models.py` NEW_FAMILIES): "
               "XLNet xlnet-base-cased's (768, 12 layers, `pieces </s> <s>`), Longformer longformer-base-4096's "
               "(window 512, 4,098 positions), T5 encoder sentence-t5-base's (768, 12 layers, gated GELU, "
               "`pieces </s>`), ModernBERT ModernBERT-base's (768, 22 layers, intermediate 1152, local window 128), "
               "Qwen3 Qwen3-Embedding-0.6B's (1024, 28 layers, 16/8 heads, `pieces </s>`, a word's last piece). "
               "transformers runs each with its model class (`T5EncoderModel` for T5), default attention.")
    pieces = ", ".join(f"{TITLES[f]} {meta['pieces'][f]:,}" for f in families)
    out.append(f"Corpus: the first {meta['n']:,} sentences of `synthetic` ({meta['corpus']}); word pieces "
               f"(no specials): {pieces}.")
    out.append("")
    out.append("Each cell: wall time of one call over the whole corpus, end to end from a list of strings to one "
               "vector per word (nlu_lite: `predict(output_level='token')`, DataFrame included; transformers: "
               "`AutoTokenizer` + `AutoModel` per batch of 32, the first piece overlapping each of nlu_lite's words, "
               "one numpy matrix). Speed-up = transformers s / nlu_lite s; ÷ BERT = that speed-up divided by "
               "BERT's from this run (≥ 1: the family is no slower, relative to transformers, than BERT).")
    out.append("")
    out.append("| family | nlu_lite fp32 s | transformers input order s | transformers sorted s | speed-up vs input "
               "order | speed-up vs sorted | ÷ BERT (input order) | ÷ BERT (sorted) | nlu_lite tokens/s | "
               "nlu_lite int8 s | int8 ÷ fp32 speed | others' CPU |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    speed = {}
    for f in families:
        n, i, s = (by.get((f, sys_)) for sys_ in ("nlu_fp32", "hf_input", "hf_sorted"))
        speed[f] = (i["median_s"] / n["median_s"] if i else None, s["median_s"] / n["median_s"] if s else None)
    base = speed.get("bert", (None, None))
    for f in families:
        n, i, s, q = (by.get((f, sys_)) for sys_ in SYSTEMS)
        cells = [_s(n), _s(i), _s(s)]
        cells += [_x(v) for v in speed[f]]
        cells += [_x(v / b) if v and b else "-" for v, b in zip(speed[f], base)]
        cells.append(f"{meta['pieces'][f] / n['median_s']:,.0f}")
        cells += [_s(q), _x(n["median_s"] / q["median_s"] if q else None)]
        cells.append(f"{max(r['other_cpu'] for r in (n, i, s, q) if r):.0%}")
        out.append(f"| {TITLES[f]} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("others' CPU: the largest share of the machine's CPU time that other processes used during one of the "
               "row's measurements (`/proc/stat`, minus the child's own); above ~10% the numbers are noisy.")
    out.append("")
    if acc:
        parts = []
        for f, a in acc.items():
            parts.append(f"{TITLES[f]} " + (a["error"] if "error" in a else
                                            f"mean {a['mean']:.6f}, min {a['min']:.6f}, max |Δ| {a['max_abs']:.1e} "
                                            f"over {a['n']:,} tokens"))
        out.append("Check, per-token cosine of transformers (input order) to nlu_lite fp32: " + "; ".join(parts) + ".")
        int8 = [f"{TITLES[f]} mean {a['mean']:.5f}, min {a['min']:.5f}" for f, a in meta.get("int8_cosine", {}).items()
                if "error" not in a]
        if int8:
            out.append("Per-token cosine of nlu_lite int8 to fp32 (random weights, so not a fidelity claim for "
                       "trained ones: `benchmarks/int8.md` measures that on MiniLM): " + "; ".join(int8) + ".")
        conv = ", ".join(f"{TITLES[f]} {by[(f, 'nlu_fp32')]['convert_s']:.1f} s" for f in families)
        out.append(f"Conversion to ONNX, fp32, fused graph (before the timed runs, not in them; well under a second "
                   f"when the cache already holds the model): {conv}.")
        out.append("")
    out.append(f"Command: `{command}`")
    return "\n".join(out) + "\n"


def _s(r: dict | None) -> str:
    return f"{r['median_s']:.2f}" if r else "-"


def _x(v: float | None) -> str:
    return f"{v:.2f}×" if v else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nlu_lite-bench",
                   help="checkpoints go here (shared with benchmarks.run); the ONNX cache and vectors under families/")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "families.md")
    p.add_argument("--n", type=int, default=600, help="sentences of the synthetic corpus (default 600)")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--retries", type=int, default=1,
                   help="re-run a measurement during which other processes used >10%% of the CPUs (after waiting "
                        "for a quiet machine); the quietest is kept (default 1)")
    p.add_argument("--max-wait", type=float, default=60.0,
                   help="seconds to wait for a quiet machine before each measurement")
    args = p.parse_args(argv)
    started = time.time()
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        p.error(f"unknown families {unknown}; choose from {list(FAMILIES)}")
    missing = [f for f in families if f not in supported()]
    if missing:
        p.error(f"this nlu_lite has no converter for {missing} (nlu_lite.convert.supported_model_types())")
    load_start = _load_average()
    log(f"preparing in {args.work} (load average {load_start})")
    meta = prepare(args.work, args.n, families)
    meta.update(machine=_machine(), threads=args.threads, batch_size=args.batch_size, repeats=args.repeats,
                load_start=load_start, date=time.strftime("%Y-%m-%d %H:%M"))
    fam_work = args.work / "families"
    rows = measure(meta, families, fam_work, args)
    acc = {f: cosines(fam_work, f) for f in families}
    meta["int8_cosine"] = {f: cosines(fam_work, f, "nlu_int8") for f in families
                           if (fam_work / f"vectors_{f}_nlu_int8.npy").is_file()}
    meta["load_end"] = _load_average()
    meta["total_min"] = (time.time() - started) / 60
    command = " ".join(["python -m benchmarks.families", *(sys.argv[1:] if argv is None else argv)])
    text = report(meta, rows, acc, command)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    (fam_work / "families.json").write_text(json.dumps({"meta": meta, "rows": rows, "accuracy": acc}, indent=1,
                                                       default=str), encoding="utf-8")
    log(f"wrote {args.out} and {fam_work / 'families.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
