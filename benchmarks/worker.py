"""One system's work in its own process, so that its peak RSS and load time are its own.

    python -m benchmarks.worker '<json job>'   ->  prints one JSON result line

Job keys: ``system`` (nlu_fp32, nlu_int8, hf_input, hf_sorted; nlu_fp32_unfused_ln and
nlu_int8_unfused_ln: the same through ``load(..., graph="standard")``), ``model`` (checkpoint
folder), ``texts`` (a JSON file holding a list of strings), ``level`` (token, sentence,
document), ``repeats``, ``batch_size``, ``threads``, optional ``save`` (an .npy path for the
output vectors of the last repeat, saved after peak RSS is read).

Optional keys for the transformers side (``benchmarks/families.py``; absent, a job runs as
described below): ``model_class`` (``"BertModel"``, the default, or ``"AutoModel"``: the class
config.json's model_type names, for RoBERTa, MPNet, ...) and ``first_piece`` (``"word_ids"``,
the default: the tokenizer's own words; or ``"overlap"``: nlu_lite's words, from
``nlu_lite.tokenize.word_splitter()``, each taking the first piece whose character span
overlaps it, as nlu_lite's token level defines it, so both sides give the same rows whatever
the tokenizer; ``"overlap_last"``: the same words, each taking its last overlapping piece, as
nlu_lite does for a causal model). ``model_class`` may name any transformers class
(``"T5EncoderModel"``, ``"Qwen3Model"``, ...).

What each side does, per timed repeat, end to end from the list of strings:

- nlu_lite: ``pipe.predict(texts, output_level=level, batch_size=32)``: sentence split,
  tokenise (Rust, one batch call), length-sorted batches (at most 32 sequences and the default
  ``max_batch_tokens=1024`` padded positions each) through onnxruntime, first piece
  per word (token) or masked mean (sentence, document), and the DataFrame (one row per
  token/sentence/document with text, offsets and a float32 vector view).
- transformers: for each batch of 32 texts (in input order, or sorted by piece count),
  ``tokenizer(batch, padding=True, return_tensors='pt')``, ``BertModel(...)`` under
  ``torch.inference_mode()`` with ``torch.set_num_threads(threads)``, then per-token vectors
  (the first piece of each word, found with ``word_ids()``) or the masked mean over
  [CLS] + pieces + [SEP] (sentence, document), gathered into one float32 numpy matrix in
  input order. No DataFrame is built on this side.
"""
from __future__ import annotations

import json
import resource
import sys
import time

WARMUP_TEXTS = 64


def _peak_rss_mb() -> float:
    # this process's own high-water mark: getrusage's ru_maxrss carries the parent's peak across
    # fork and exec on Linux, so a child of a big benchmark process would report at least that
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # not Linux: the best there is


def _nlu(job: dict, texts: list[str]):
    t0 = time.perf_counter()
    import nlu_lite

    precision = "int8" if job["system"].startswith("nlu_int8") else "fp32"
    graph = "standard" if job["system"].endswith("_unfused_ln") else "fused"  # plain ONNX attention
    pipe = nlu_lite.load(path=job["model"], precision=precision, threads=job["threads"], graph=graph)
    load_s = time.perf_counter() - t0

    def work(batch_texts):
        # reuse of repeated sentences off: the `real` corpus repeats topics.csv, and the headline rows
        # compare engines, not de-duplication (benchmarks/reuse.py measures that)
        return pipe.predict(batch_texts, output_level=job["level"], batch_size=job["batch_size"], progress=False,
                            deduplicate=False)

    def matrix(df):
        return nlu_lite.to_matrix(df)

    return load_s, work, matrix


def _hf(job: dict, texts: list[str]):
    t0 = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from transformers import AutoTokenizer

    torch.set_num_threads(job["threads"])
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    model_class = getattr(transformers, job.get("model_class", "BertModel"))
    model = model_class.from_pretrained(job["model"]).eval()
    load_s = time.perf_counter() - t0
    token_level = job["level"] == "token"
    sort = job["system"] == "hf_sorted"
    size = job["batch_size"]
    last = job.get("first_piece") == "overlap_last"  # a causal model's word vector: its last piece (nlu_lite's)
    overlap = job.get("first_piece", "word_ids") == "overlap" or last
    if overlap:
        from nlu_lite.tokenize import word_splitter

        splitter = word_splitter()

    def first_pieces(word_ids: list) -> np.ndarray:
        w = np.array([-1 if x is None else x for x in word_ids])
        prev = np.r_[-1, w[:-1]]
        return np.flatnonzero((w >= 0) & (w != prev))


    def first_overlapping(offsets: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Per word [begin, end), the first (``overlap_last``: the last) piece whose span overlaps it;
        uncovered words (none in the benchmark's corpora) have no row. Special tokens and padding have
        empty spans."""
        pb, pe = offsets[:, 0], offsets[:, 1]
        hit = (pe > pb)[None, :] & (pb[None, :] < ends[:, None]) & (pe[None, :] > begins[:, None])
        covered = hit.any(axis=1)
        if last:
            return (hit.shape[1] - 1 - hit[:, ::-1].argmax(axis=1))[covered]
        return hit.argmax(axis=1)[covered]

    def work(batch_texts):
        n = len(batch_texts)
        if sort:
            lengths = [len(e) for e in tokenizer(batch_texts, add_special_tokens=False)["input_ids"]]
            order = sorted(range(n), key=lengths.__getitem__)
        else:
            order = list(range(n))
        results: list = [None] * n
        with torch.inference_mode():
            for i in range(0, n, size):
                idx = order[i:i + size]
                chunk = [batch_texts[k] for k in idx]
                enc = tokenizer(chunk, padding=True, return_tensors="pt", return_offsets_mapping=overlap)
                states = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
                if token_level and overlap:
                    arr, offsets = states.numpy(), enc["offset_mapping"].numpy()
                    begins, ends, starts = splitter.split(chunk)
                    for b, k in enumerate(idx):
                        words = slice(starts[b], starts[b + 1])
                        results[k] = arr[b, first_overlapping(offsets[b], begins[words], ends[words])]
                elif token_level:
                    arr = states.numpy()
                    for b, k in enumerate(idx):
                        results[k] = arr[b, first_pieces(enc.word_ids(b))]
                else:
                    mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                    pooled = ((states * mask).sum(1) / mask.sum(1)).numpy()
                    for b, k in enumerate(idx):
                        results[k] = pooled[b]
        if token_level:
            return np.concatenate(results, axis=0).astype(np.float32, copy=False)
        return np.stack(results).astype(np.float32, copy=False)

    return load_s, work, lambda out: out


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    with open(job["texts"], encoding="utf-8") as fh:
        texts = json.load(fh)
    start_rss = _peak_rss_mb()
    factory = _nlu if job["system"].startswith("nlu") else _hf
    load_s, work, matrix = factory(job, texts)
    rss_loaded = _peak_rss_mb()
    t = time.perf_counter()
    work(texts[:WARMUP_TEXTS])
    warmup_s = time.perf_counter() - t
    times = []
    out = None
    for _ in range(job["repeats"]):
        out = None  # let the previous result go before the next run, as a user's loop would
        t = time.perf_counter()
        out = work(texts)
        times.append(time.perf_counter() - t)
    peak = _peak_rss_mb()
    n_out = len(out)
    if job.get("save"):
        import numpy as np

        np.save(job["save"], matrix(out))
    print(json.dumps({
        "system": job["system"], "level": job["level"], "times": times, "load_s": load_s, "warmup_s": warmup_s,
        "peak_rss_mb": peak, "rss_after_load_mb": rss_loaded, "rss_before_load_mb": start_rss, "n_out": n_out,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
