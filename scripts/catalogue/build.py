"""NLU's embedding catalogue, generated from its sources: run by hand, its outputs committed.

Two steps:

    # 1. NLU's references, from NLU's own spellbook (JohnSnowLabs/nlu, nlu/spellbook.py; 5.4.1 for the snapshot)
    python scripts/catalogue/build.py snapshot --spellbook /path/to/nlu/nlu/spellbook.py
    # 1a. NLU's actions that are not embeddings (pos, ner, sentiment, ...), for load('pos sentiment bert')'s error
    python scripts/catalogue/build.py actions --spellbook /path/to/nlu/nlu/spellbook.py --source JohnSnowLabs/nlu@<commit>
    # 1b. the public vector tables static cards name, from their publishers' pages (git dirs of the three repos)
    python scripts/catalogue/build.py tables --fasttext <facebookresearch/fastText> --glove <stanfordnlp/GloVe> \
        --torchtext <pytorch/text>
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

- ``static_cards.jsonl``: the cards of the static tables (``WordEmbeddingsModel``/``Word2VecModel``) as read:
  title, description, references, case rule, width, and ``stated_table`` with the card's own words that say
  what its vectors are (``fasttext_cc``: fastText's Common Crawl vectors, named in its description, title or
  tags; ``glove_6B``/``glove_840B``: GloVe) in ``stated_evidence``.
- ``tables.csv`` (step 1b): each public table's URL, the member inside a zip, its width, and the
  ``repo@commit:file:line`` that states them (fastText's ``docs/crawl-vectors.md``, GloVe's README, torchtext's
  ``vectors.py`` for the file names inside GloVe's zips). A static reference loads (``status=table``) only when
  both hold: its card says which table, and the publisher lists that table.

A card that links ``huggingface.co/<one segment>`` with a hyphen (``camembert-base``) names a model of the
Hub's first years, whose id has no owner; the Hub still serves it under that id (``status=hub``).

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
FIELDS = ("nlu_reference", "language", "spark_nlp_model", "annotator", "task", "hf_repo", "status", "card",
          "table_url", "table_dim", "case_sensitive", "table_source")
STATIC_CARDS = HERE / "static_cards.jsonl"  # the static tables' cards as read: what each says its vectors are
STATIC_ANNOTATORS = ("WordEmbeddingsModel", "Word2VecModel")
LOADS = ("registry", "hub", "table")

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
    "WordEmbeddingsModel": "static: a static word-vector table whose card names no public table nlu_lite can fetch "
                           "(fastText's and GloVe's load: en.embed, af.embed.w2v_cc_300d); nlu_lite loads GloVe, "
                           "word2vec and fastText files you have (load(path='vectors.txt'))",
    "Word2VecModel": "static: a word2vec table; nlu_lite loads word2vec files (load(path='vectors.bin')) but records "
                     "no source it can fetch for this one",
    "InstructorEmbeddings": "instructor: INSTRUCTOR is run by its own package (InstructorEmbedding), whose pooling "
                            "leaves out the instruction, not by its repo's sentence-transformers files; a folder whose "
                            "Pooling config sets include_prompt: false loads with load(path=...)",
}
# a link to huggingface.co/<one segment> is an organisation's page (huggingface.co/BAAI), or a model of the Hub's
# first years, named without an owner (bert-large-cased-whole-word-masking, camembert-base): the Hub still serves
# those by that id. A segment with a hyphen is read as such a model; one without, as an organisation.
_LEGACY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*-[A-Za-z0-9_.-]*[A-Za-z0-9]")
_LEGACY_LINK = re.compile(r"https?://huggingface\.co/([^/?#\s]+)/?")


def legacy_repo(record: dict) -> str:
    """The owner-less model id a card links (its only huggingface.co link, when that is one), else ``""``."""
    links = [m.group(1) for link in record.get("other_sources") or [] if (m := _LEGACY_LINK.fullmatch(link.strip()))]
    hub_links = [link for link in record.get("other_sources") or [] if "huggingface.co/" in link]
    return links[0] if len(links) == len(hub_links) == 1 and _LEGACY.fullmatch(links[0]) else ""


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


TABLES = HERE / "tables.csv"
TABLE_FIELDS = ("table", "language", "name", "url", "member", "dim", "source")
_FASTTEXT_VEC = re.compile(r"([^|:]+?):\s*\[bin\]\([^)]*\),\s*"
                           r"\[text\]\((https://dl\.fbaipublicfiles\.com/fasttext/vectors-crawl/cc\.([a-z_-]+)\.300\.vec\.gz)\)")
_GLOVE_ZIP = re.compile(r'<a href="(https://huggingface\.co/stanfordnlp/glove/resolve/main/glove\.([0-9A-Za-z.]+?)(?:\.300d)?\.zip)">')
_GLOVE_MEMBER = re.compile(r'name = "glove\.\{\}\.\{\}d\.txt"\.format\(name, str\(dim\)\)')


def _git_show(mirror: Path, path: str) -> tuple[str, str]:
    """(text of ``path`` at HEAD, the commit) from a bare mirror made by the ``fetch`` tool (or any git dir)."""
    import subprocess

    commit = subprocess.run(["git", "-C", str(mirror), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    text = subprocess.run(["git", "-C", str(mirror), "show", f"HEAD:{path}"], capture_output=True, text=True,
                          check=True).stdout
    return text, commit


def tables(fasttext: Path, glove: Path, torchtext: Path) -> int:
    """Step 1b: the public vector tables the static cards name, read from their publishers' own pages
    (facebookresearch/fastText docs/crawl-vectors.md: one ``cc.<lang>.300.vec.gz`` per language, "in dimension
    300"; stanfordnlp/GloVe README.md: the zips; pytorch/text torchtext/vocab/vectors.py: the table inside a GloVe
    zip is ``glove.<name>.<dim>d.txt``), with the repo, commit, file and line of each fact."""
    out = []
    text, commit = _git_show(fasttext, "docs/crawl-vectors.md")
    assert "in dimension 300" in text, "fastText's page no longer states the dimension"
    for number, line in enumerate(text.splitlines(), 1):
        for name, url, lang in _FASTTEXT_VEC.findall(line):
            out.append({"table": f"fasttext_cc_{lang}", "language": lang, "name": name.strip(), "url": url,
                        "member": "", "dim": 300,
                        "source": f"facebookresearch/fastText@{commit[:12]}:docs/crawl-vectors.md:{number}"})
    member_text, member_commit = _git_show(torchtext, "torchtext/vocab/vectors.py")
    member_lines = member_text.splitlines()
    member_line = next(i for i, line in enumerate(member_lines, 1) if _GLOVE_MEMBER.search(line))
    widths = collections.defaultdict(list)  # torchtext's pretrained aliases: the widths each zip holds
    for number, line in enumerate(member_lines, 1):
        for name, dim in re.findall(r'partial\(GloVe, name="([^"]+)", dim="(\d+)"\)', line):
            widths[name].append((int(dim), number))
    text, commit = _git_show(glove, "README.md")
    for number, line in enumerate(text.splitlines(), 1):
        for url, name in _GLOVE_ZIP.findall(line):
            for dim, alias_line in widths[name]:
                out.append({"table": f"glove_{name}_{dim}d", "language": "en", "name": f"GloVe {name}", "url": url,
                            "member": f"glove.{name}.{dim}d.txt", "dim": dim,
                            "source": (f"stanfordnlp/GloVe@{commit[:12]}:README.md:{number}; member and width: "
                                       f"pytorch/text@{member_commit[:12]}:torchtext/vocab/vectors.py:{member_line},"
                                       f"{alias_line}")})
    with TABLES.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, TABLE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(out)
    return len(out)


ACTIONS = ROOT / "nlu_lite" / "data" / "nlu_actions.csv"
EMBED_ACTIONS = ("embed", "embed_sentence", "embed_chunk")


def actions(spellbook: Path, source: str) -> int:
    """Step 1c: NLU's actions that are not embeddings (``pos``, ``ner``, ``sentiment``, ``translate`` ...), from every
    reference of its spellbook (component aliases, pipelines, models): the action (the reference's part after its
    language, or its first part), how many references use it, and the annotator class most of its models are
    (``nlp_ref_to_anno_class``; ``pipeline`` where they are pipelines). ``load('pos sentiment bert')`` reads it
    to say what nlu_lite would run and what it does not do."""
    tree = ast.parse(spellbook.read_text(encoding="utf-8"))
    book = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Spellbook")
    wanted = ("component_alias_references", "pretrained_pipe_references", "pretrained_models_references",
              "nlp_ref_to_anno_class")
    tables = {node.targets[0].id: ast.literal_eval(node.value) for node in book.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in wanted}
    languages = set(tables["pretrained_models_references"]) | set(tables["pretrained_pipe_references"])
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def add(ref: str, annotator: str) -> None:
        parts = ref.split(".")
        while len(parts) > 1 and (parts[0] in languages or parts[1] in ("marian", "translate_to")):
            parts = parts[1:]  # 'xx.de.translate_to.en', 'xx.aav.marian.translate_to.en': the codes go
        counts[parts[0]][annotator] += 1

    for ref, entry in tables["component_alias_references"].items():  # (name, kind) or (name, kind, ...)
        name, kind = entry[0], entry[1]
        add(ref, "pipeline" if kind == "component_list" else tables["nlp_ref_to_anno_class"].get(name, ""))
    for refs in tables["pretrained_pipe_references"].values():
        for ref in refs:
            add(ref, "pipeline")
    for refs in tables["pretrained_models_references"].values():
        for ref, model in refs.items():
            add(ref, tables["nlp_ref_to_anno_class"].get(model, ""))
    rows = []
    for action, annotators in sorted(counts.items()):
        named = [(a, n) for a, n in annotators.most_common() if a]
        embeds = any(a.endswith("Embeddings") or a in ("WordEmbeddingsModel", "Word2VecModel", "Doc2VecModel",
                                                         "UniversalSentenceEncoder") for a, _ in named)
        if action in EMBED_ACTIONS or embeds or not re.fullmatch(r"[a-z][a-z0-9_]*", action):
            continue  # embeddings, under NLU's bare names too ('bert', 'glove', 'elmo')
        rows.append({"action": action, "references": sum(annotators.values()),
                     "annotator": named[0][0] if named else "", "source": source})
    with ACTIONS.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, ("action", "references", "annotator", "source"), lineterminator="\n")
        writer.writeheader()
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


def _tables() -> dict[str, dict]:
    return {row["table"]: row for row in csv.DictReader(TABLES.read_text(encoding="utf-8").splitlines())}


def _static_cards() -> dict[tuple[str, str], dict]:
    if not STATIC_CARDS.is_file():
        return {}
    records = (json.loads(line) for line in STATIC_CARDS.read_text(encoding="utf-8").splitlines() if line.strip())
    return {(r["lang"], r["model"]): r for r in records}


# a card whose title names another language than the publisher's table of its code: which one Spark NLP holds
# is not stated, so the reference does not load (the card's language names are ISO 639's, the publisher's
# Wikipedia's; where they differ only in spelling, Bangla / Bengali, Odia / Oriya, they name one language)
LANGUAGE_CONFLICTS = {"als": "its card names Tosk Albanian (ISO 639-3 als) but fastText's cc.als table is Alemannic "
                             "(Wikipedia's als); which one Spark NLP's w2v_cc_300d holds is not stated"}


def table_of(record: dict | None, tables: dict[str, dict]) -> dict | None:
    """The public table a static model's card says its vectors are, where the card says it (its description,
    title or front matter tags: ``stated_evidence``) and the publisher lists that table: fastText's Common
    Crawl vectors of the card's language, or GloVe at the card's width."""
    if not record or not record.get("found") or record.get("card_language") != record.get("lang"):
        return None
    kind, dim = record.get("stated_table"), record.get("dimension")
    if kind == "fasttext_cc":
        table = None if record["lang"] in LANGUAGE_CONFLICTS else tables.get(f"fasttext_cc_{record['lang']}")
    elif kind in ("glove_6B", "glove_840B", "glove_42B") and isinstance(dim, int):
        table = tables.get(f"{kind}_{dim}d")
    else:
        return None
    if table is None or (isinstance(dim, int) and dim != int(table["dim"])):
        return None
    return table


def status_of(row: dict, record: dict | None, registered, static: dict | None = None,
              tables: dict | None = None) -> tuple[str, str, str]:
    """(status, hf_repo, card) of one reference."""
    if registered(row["nlu_reference"]):
        return "registry", "", ""
    if row["annotator"] in STATIC_ANNOTATORS and table_of(static, tables or {}) is not None:
        return "table", "", _card_name(static)
    if row["annotator"] in STATIC_ANNOTATORS and static and static.get("found") and row["language"] in \
            LANGUAGE_CONFLICTS and static.get("stated_table") == "fasttext_cc":
        return f"static: {LANGUAGE_CONFLICTS[row['language']]}", "", _card_name(static)
    if row["annotator"] in CANNOT:
        return CANNOT[row["annotator"]], "", _card_name(record) if record and record.get("found") else ""
    if record is None or not record.get("read"):
        return "unread: its model card has not been read yet (scripts/catalogue/cards.jsonl)", "", ""
    if not record.get("found"):
        return ("no card: no Spark NLP model card of this name and language was found by the search tools "
                "(their index holds part of the cards; the card may exist)"), "", ""
    repo = record.get("hf_repo") or legacy_repo(record)
    if not repo:
        elsewhere = ", ".join(record.get("other_sources") or []) or "no source"
        return f"no repo: its card names no Hugging Face repo ({elsewhere})", "", _card_name(record)
    if not (_REPO.fullmatch(repo) or _LEGACY.fullmatch(repo)):
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
    cards, static_cards, tables = _cards(), _static_cards(), _tables()
    rows = []
    for row in csv.DictReader(SNAPSHOT.read_text(encoding="utf-8").splitlines()):
        key = (row["language"], row["spark_nlp_model"])
        record, static = cards.get(key), static_cards.get(key)
        status, repo, card = status_of(row, record, registered, static, tables)
        task = "sentence" if row["annotator"] in SENTENCE_ANNOTATORS or ".embed_sentence." in f".{row['nlu_reference']}" \
            else "token"
        extra = dict.fromkeys(FIELDS[-4:], "")
        if status == "table":
            table = table_of(static, tables)
            extra = {"table_url": table["url"] + (f"#{table['member']}" if table["member"] else ""),
                     "table_dim": table["dim"],
                     # Spark NLP's WordEmbeddingsModel: caseSensitive false unless the card says true
                     "case_sensitive": "true" if static.get("case_sensitive") is True else "false",
                     "table_source": table["source"]}
        rows.append({**row, "task": task, "hf_repo": repo, "status": status, "card": card, **extra})
    return rows


def catalogue_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def report_text(rows: list[dict]) -> str:
    kinds = collections.Counter(r["status"].split(":")[0] for r in rows)
    loads = sum(kinds[k] for k in LOADS)
    lines = ["# NLU's embedding catalogue: what loads and what does not", "",
             ("Generated by `python scripts/catalogue/build.py build` from `scripts/catalogue/spellbook_refs.csv` "
              "(NLU 5.4.1's spellbook) and `scripts/catalogue/cards.jsonl` (Spark NLP model cards as read); "
              "do not edit by hand."), "",
             (f"{len(rows)} references; {loads} resolve ({kinds['registry']} to hand-written registry entries, "
              f"{kinds['hub']} to the Hugging Face repo their card states, {kinds['table']} to the public vector "
              "table their card names, at the URL its publisher states: `scripts/catalogue/tables.csv`)."), "",
             "| status | references |", "|---|---:|"]
    lines += [f"| {k} | {n} |" for k, n in kinds.most_common()]
    lines += ["", "## By language (references that resolve / all)", "", "| language | resolve | all |", "|---|---:|---:|"]
    by_lang = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        by_lang[r["language"]][1] += 1
        by_lang[r["language"]][0] += r["status"] in LOADS
    for lang, (ok, n) in sorted(by_lang.items(), key=lambda kv: (-kv[1][1], kv[0])):
        lines.append(f"| {lang} | {ok} | {n} |")
    lines += ["", "## By annotator (references that resolve / all)", "", "| annotator | resolve | all |",
              "|---|---:|---:|"]
    by_anno = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        by_anno[r["annotator"] or "(none)"][1] += 1
        by_anno[r["annotator"] or "(none)"][0] += r["status"] in LOADS
    for anno, (ok, n) in sorted(by_anno.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {anno} | {ok} | {n} |")
    lines += ["", "## References that do not load, and why", "", "| reference | Spark NLP model | reason |",
              "|---|---|---|"]
    for r in rows:
        if r["status"] not in LOADS:
            lines.append(f"| `{r['nlu_reference']}` | {r['spark_nlp_model']} | {r['status']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    step = sub.add_parser("snapshot", help="NLU's references from its spellbook.py")
    step.add_argument("--spellbook", type=Path, required=True)
    step = sub.add_parser("tables", help="the public vector tables (fastText, GloVe) from their publishers' pages")
    step.add_argument("--fasttext", type=Path, required=True, help="git dir of facebookresearch/fastText")
    step.add_argument("--glove", type=Path, required=True, help="git dir of stanfordnlp/GloVe")
    step.add_argument("--torchtext", type=Path, required=True, help="git dir of pytorch/text")
    step = sub.add_parser("actions", help="NLU's non-embedding actions from its spellbook.py")
    step.add_argument("--spellbook", type=Path, required=True)
    step.add_argument("--source", required=True, help="where the spellbook is from, e.g. JohnSnowLabs/nlu@<commit>")
    sub.add_parser("build", help="catalogue.csv and docs/catalogue.md from the snapshot and the card extracts")
    args = parser.parse_args(argv)
    if args.step == "snapshot":
        print(f"{snapshot(args.spellbook)} references -> {SNAPSHOT}")
        return 0
    if args.step == "actions":
        print(f"{actions(args.spellbook, args.source)} actions -> {ACTIONS}")
        return 0
    if args.step == "tables":
        print(f"{tables(args.fasttext, args.glove, args.torchtext)} tables -> {TABLES}")
        return 0
    rows = build()
    CATALOGUE.write_text(catalogue_text(rows), encoding="utf-8")
    REPORT.write_text(report_text(rows), encoding="utf-8")
    print(f"{len(rows)} references -> {CATALOGUE}, {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
