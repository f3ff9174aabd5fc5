"""The benchmark's texts: a seeded synthetic corpus and real text shipped in the repository.

Synthetic: English-like sentences whose length in word pieces (under the bert-base-uncased
vocabulary, no [CLS]/[SEP]) is drawn from a clipped log-normal in [5, 60] pieces (mean ≈ 25,
so 2,000 sentences ≈ 49.5k pieces). Words are drawn from the unigram distribution of the
repository's real corpus (``nlu_lite/data/topics.csv``), with some whole words from the
vocabulary and rare made-up compounds mixed in so that words split into ``##`` pieces
as real text does. Each synthetic row is exactly one sentence for nlu_lite's splitter.

Real: ``nlu_lite/data/topics.csv`` (the notebooks' corpus, 360 hand-written sentences),
repeated to ~2,000 rows so that timings are not dominated by start-up noise.

Documents: consecutive rows joined with a space, 4 to 12 sentences each (seeded), so every
document fits one 512-piece window and document-level runs embed one sequence per document.
"""
from __future__ import annotations

import csv
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOPICS_CSV = REPO / "nlu_lite" / "data" / "topics.csv"
MIN_PIECES, MAX_PIECES = 5, 60


@dataclass(frozen=True)
class Corpus:
    """Rows of text (one sentence each) and the same sentences grouped into documents."""

    name: str
    sentences: list[str]
    documents: list[str]
    pieces: int  # word pieces over all sentences (no [CLS]/[SEP]); the same text as the documents
    description: str


def _topics_texts() -> list[str]:
    with TOPICS_CSV.open(encoding="utf-8", newline="") as fh:
        return [row["text"] for row in csv.DictReader(fh) if row["text"].strip()]


def _group_documents(sentences: list[str], seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    docs, i = [], 0
    while i < len(sentences):
        n = rng.randint(4, 12)
        docs.append(" ".join(sentences[i:i + n]))
        i += n
    return docs


def _piece_counter(tokenizer):
    cache: dict[str, int] = {}

    def count(word: str) -> int:
        if word not in cache:
            cache[word] = len(tokenizer.encode(word, add_special_tokens=False).ids)
        return cache[word]

    return count


def _draw(rng: random.Random, pool, weights, vocab_words) -> str:
    r = rng.random()
    if r < 0.86:
        return rng.choices(pool, weights)[0]
    if r < 0.95:
        return rng.choice(vocab_words)
    return rng.choice(vocab_words) + rng.choice(vocab_words)[:4]  # rare compounds split, as names do


def synthetic(tokenizer, n: int = 2000, seed: int = 0) -> Corpus:
    """``n`` seeded English-like sentences of 5-60 word pieces (``tokenizer``: a tokenizers.Tokenizer)."""
    rng = random.Random(seed)
    counts = Counter(w.strip(".,;:!?\"'()").lower() for t in _topics_texts() for w in t.split())
    counts = Counter({w: c for w, c in counts.items() if w and not any(ch in w for ch in ".!?")})
    pool, weights = zip(*sorted(counts.items()))
    vocab_words = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) >= 4)
    count = _piece_counter(tokenizer)
    sentences = []
    for _ in range(n):
        target = int(round(math.exp(rng.gauss(math.log(22.0), 0.5))))
        target = min(max(target, MIN_PIECES), MAX_PIECES)
        words: list[str] = []
        used = 1  # the final full stop
        while used < target:
            word = _draw(rng, pool, weights, vocab_words)
            for _ in range(20):  # near the target, look for a word that still fits
                if used + count(word) <= target:
                    break
                word = rng.choices(pool, weights)[0]
            else:
                break
            words.append(word)
            used += count(word)
            if len(words) > 3 and used + 1 < target and rng.random() < 0.06:
                words[-1] += ","
                used += 1
        text = " ".join(words)
        sentences.append(text[0].upper() + text[1:] + ".")
    pieces = sum(len(e.ids) for e in tokenizer.encode_batch(sentences, add_special_tokens=False))
    return Corpus(
        name="synthetic",
        sentences=sentences,
        documents=_group_documents(sentences, seed),
        pieces=pieces,
        description=f"{n} seeded English-like sentences, {MIN_PIECES}-{MAX_PIECES} pieces (seed {seed})",
    )


def real(tokenizer, target_rows: int = 2000) -> Corpus:
    """``topics.csv``'s sentences, repeated (whole copies) up to about ``target_rows`` rows."""
    texts = _topics_texts()
    copies = max(1, round(target_rows / len(texts)))
    sentences = texts * copies
    pieces = sum(len(e.ids) for e in tokenizer.encode_batch(sentences, add_special_tokens=False))
    return Corpus(
        name="real",
        sentences=sentences,
        documents=_group_documents(sentences, 0),
        pieces=pieces,
        description=f"nlu_lite/data/topics.csv: {len(texts)} sentences x {copies}",
    )
