"""NLU's embedding catalogue, generated from its sources: run by hand, its outputs committed.

Two steps:

    # 1. NLU's references, from NLU's own spellbook (JohnSnowLabs/nlu, nlu/spellbook.py; 5.4.1 for the snapshot)
    python scripts/catalogue/build.py snapshot --spellbook /path/to/nlu/nlu/spellbook.py
    # 2. the catalogue and its report, from that snapshot and the model-card extracts
    python scripts/catalogue/build.py build

Inputs (committed here):

- ``spellbook_refs.csv``: every ``<lang>.embed.*`` / ``<lang>.embed_sentence.*`` reference of
  ``Spellbook.pretrained_models_references`` with its Spark NLP model and the annotator class
  ``Spellbook.nlp_ref_to_anno_class`` gives it (written by step 1, the file parsed, never imported).
- ``cards.jsonl``: one record per (language, Spark NLP model) read from Spark NLP's model cards
  (JohnSnowLabs/spark-nlp, ``docs/_posts/<author>/<date>-<model>_<lang>*.md``): the front matter
  (``name``, ``language``, ``annotator``, ``date``, ``edition``), the download file, the card's path
  where the reading tool showed it, and the Hugging Face repo only where the card states it (a
  ``huggingface.co/<owner>/<name>`` link, or "`<name>` ... originally trained by `<owner>`"), with
  the text that states it (``repo_evidence``). ``read: false`` marks a model whose card was not read.

Outputs:

- ``nlu_lite/data/catalogue.csv``: every reference with ``status``: ``hub`` (loadable: the stated
  repo, through the Hub, its settings from its own files) or why not; hand-written registry entries win
  (``status=registry``), so the catalogue never changes what an existing reference loads.
- ``docs/catalogue.md``: counts by language, annotator and status, and every reference that does
  not load, with its reason.
"""
from __future__ import annotations

import argparse
import ast
import collections
import csv
import io
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SNAPSHOT = HERE / "spellbook_refs.csv"
CARDS = HERE / "cards.jsonl"
CATALOGUE = ROOT / "nlu_lite" / "data" / "catalogue.csv"
REPORT = ROOT / "docs" / "catalogue.md"
FIELDS = ("nlu_reference", "language", "spark_nlp_model", "annotator", "task", "hf_repo", "status", "card")

# Spark NLP annotator -> what its vectors are (sentence annotators pool; the rest give token vectors)
SENTENCE_ANNOTATORS = {"BertSentenceEmbeddings", "RoBertaSentenceEmbeddings", "XlmRoBertaSentenceEmbeddings",
                       "MPNetEmbeddings", "E5Embeddings", "BGEEmbeddings", "InstructorEmbeddings",
                       "UniversalSentenceEncoder", "Doc2VecModel"}
# annotators whose models nlu_lite cannot run, and why (the reason is shown by load())
CANNOT = {
    "UniversalSentenceEncoder": "tensorflow: the Universal Sentence Encoder is a TensorFlow Hub graph (custom ops); "
                                "nlu_lite runs transformers checkpoints without TensorFlow. Nearest that runs: "
                                "en.embed_sentence.minilm_l6 or "
                                "en.embed_sentence.mpnet.all_mpnet_base_v2",
    "ElmoEmbeddings": "tensorflow: ELMo is a TensorFlow Hub character-CNN + LSTM graph; nlu_lite runs transformers "
                      "checkpoints without TensorFlow. Nearest that runs: en.embed.bert",
    "Doc2VecModel": "doc2vec: a Doc2Vec model infers a document vector by training steps at prediction time, which "
                    "nlu_lite does not do. Nearest that runs: en.embed_sentence.minilm_l6",
    "WordEmbeddingsModel": "static: a static word-vector table; nlu_lite loads GloVe, word2vec and fastText files "
                           "(load(path='glove.6B.100d.txt')) but records no source it can fetch for this one. GloVe 6B "
                           "at 50 dimensions loads offline: en.embed.glove.6B_50d",
    "Word2VecModel": "static: a word2vec table; nlu_lite loads word2vec files (load(path='vectors.bin')) but records "
                     "no source it can fetch for this one",
    "InstructorEmbeddings": "instructor: INSTRUCTOR is run by its own package (InstructorEmbedding), whose pooling "
                            "leaves out the instruction, not by its repo's sentence-transformers files; a folder whose "
                            "Pooling config sets include_prompt: false loads with load(path=...)",
}
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def snapshot(spellbook: Path) -> int:
    """Step 1: the embedding references of NLU's spellbook, parsed (not imported), into SNAPSHOT."""
    tree = ast.parse(spellbook.read_text(encoding="utf-8"))
    book = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Spellbook")
    tables = {}
    for node in book.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in (
                "pretrained_models_references", "nlp_ref_to_anno_class"):
            tables[node.targets[0].id] = ast.literal_eval(node.value)
    rows = []
    for language, refs in tables["pretrained_models_references"].items():
        for ref, model in refs.items():
            parts = ref.split(".")
            if len(parts) > 1 and parts[1] in ("embed", "embed_sentence"):
                rows.append((ref, language, model, tables["nlp_ref_to_anno_class"].get(model) or ""))
    rows.sort()
    with SNAPSHOT.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("nlu_reference", "language", "spark_nlp_model", "annotator"))
        writer.writerows(rows)
    return len(rows)


def _cards() -> dict[tuple[str, str], dict]:
    out = {}
    for line in CARDS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out[(record["lang"], record["model"])] = record
    return out


def _card_name(record: dict) -> str:
    """Where the card is: its path when known, else its name, date, edition and download file."""
    if re.fullmatch(r"docs/_posts/[^/]+/[^/]+\.md", record.get("card_path") or ""):
        return record["card_path"]
    parts = [record.get("card_name") or record["model"], record.get("card_date"), record.get("card_edition"),
             record.get("download")]
    return "card " + ", ".join(p for p in parts if p)


def status_of(row: dict, record: dict | None, registered) -> tuple[str, str, str]:
    """(status, hf_repo, card) of one reference."""
    if registered(row["nlu_reference"]):
        return "registry", "", ""
    if row["annotator"] in CANNOT:
        return CANNOT[row["annotator"]], "", _card_name(record) if record and record.get("found") else ""
    if record is None or not record.get("read"):
        return "unread: its model card has not been read yet (scripts/catalogue/cards.jsonl)", "", ""
    if not record.get("found"):
        return ("no card: no Spark NLP model card of this name and language was found by the search tools "
                "(their index holds part of the cards; the card may exist)"), "", ""
    repo = record.get("hf_repo") or ""
    if not repo:
        elsewhere = ", ".join(record.get("other_sources") or []) or "no source"
        return f"no repo: its card names no Hugging Face repo ({elsewhere})", "", _card_name(record)
    if not _REPO.fullmatch(repo):
        return (f"no repo: its card links huggingface.co/{repo}, an organisation or a legacy id, not owner/name",
                "", _card_name(record))
    return "hub", repo, _card_name(record)


def build(registered=None) -> list[dict]:
    """Step 2: the catalogue rows, in SNAPSHOT's order (also what tests compare the committed file with)."""
    if registered is None:
        sys.path.insert(0, str(ROOT))
        from nlu_lite.registry import add_nlu_aliases, load_registry

        registry = load_registry()  # the hand-written entries and NLU's alias table, not the catalogue itself
        add_nlu_aliases(registry)
        registered = registry.__contains__
    cards = _cards()
    rows = []
    for row in csv.DictReader(SNAPSHOT.read_text(encoding="utf-8").splitlines()):
        record = cards.get((row["language"], row["spark_nlp_model"]))
        status, repo, card = status_of(row, record, registered)
        task = "sentence" if row["annotator"] in SENTENCE_ANNOTATORS or ".embed_sentence." in f".{row['nlu_reference']}" \
            else "token"
        rows.append({**row, "task": task, "hf_repo": repo, "status": status, "card": card})
    return rows


def catalogue_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def report_text(rows: list[dict]) -> str:
    kinds = collections.Counter(r["status"].split(":")[0] for r in rows)
    loads = sum(kinds[k] for k in ("registry", "hub"))
    lines = ["# NLU's embedding catalogue: what loads and what does not", "",
             ("Generated by `python scripts/catalogue/build.py build` from `scripts/catalogue/spellbook_refs.csv` "
              "(NLU 5.4.1's spellbook) and `scripts/catalogue/cards.jsonl` (Spark NLP model cards as read); "
              "do not edit by hand."), "",
             (f"{len(rows)} references; {loads} resolve ({kinds['registry']} to hand-written registry entries, "
              f"{kinds['hub']} to the Hugging Face repo their card states)."), "",
             "| status | references |", "|---|---:|"]
    lines += [f"| {k} | {n} |" for k, n in kinds.most_common()]
    lines += ["", "## By language (references that resolve / all)", "", "| language | resolve | all |", "|---|---:|---:|"]
    by_lang = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        by_lang[r["language"]][1] += 1
        by_lang[r["language"]][0] += r["status"] in ("registry", "hub")
    for lang, (ok, n) in sorted(by_lang.items(), key=lambda kv: (-kv[1][1], kv[0])):
        lines.append(f"| {lang} | {ok} | {n} |")
    lines += ["", "## By annotator (references that resolve / all)", "", "| annotator | resolve | all |",
              "|---|---:|---:|"]
    by_anno = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        by_anno[r["annotator"] or "(none)"][1] += 1
        by_anno[r["annotator"] or "(none)"][0] += r["status"] in ("registry", "hub")
    for anno, (ok, n) in sorted(by_anno.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {anno} | {ok} | {n} |")
    lines += ["", "## References that do not load, and why", "", "| reference | Spark NLP model | reason |",
              "|---|---|---|"]
    for r in rows:
        if r["status"] not in ("registry", "hub"):
            lines.append(f"| `{r['nlu_reference']}` | {r['spark_nlp_model']} | {r['status']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    step = sub.add_parser("snapshot", help="NLU's references from its spellbook.py")
    step.add_argument("--spellbook", type=Path, required=True)
    sub.add_parser("build", help="catalogue.csv and docs/catalogue.md from the snapshot and the card extracts")
    args = parser.parse_args(argv)
    if args.step == "snapshot":
        print(f"{snapshot(args.spellbook)} references -> {SNAPSHOT}")
        return 0
    rows = build()
    CATALOGUE.write_text(catalogue_text(rows), encoding="utf-8")
    REPORT.write_text(report_text(rows), encoding="utf-8")
    print(f"{len(rows)} references -> {CATALOGUE}, {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
