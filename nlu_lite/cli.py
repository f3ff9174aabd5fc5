"""The ``nlu-lite`` command: models, predict, convert, download, cache. Thin over the library."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .choices import (
    ENGINE_CHOICES,
    GRAPH_VARIANTS,
    LOAD_PRECISIONS,
    OUTPUT_LEVELS,
    PRECISIONS,
    SENTENCE_POOLINGS,
    SUBTOKEN_POOLINGS,
    TASKS,
)
from .errors import InputError, NluLiteError


def _cmd_models(args: argparse.Namespace) -> int:
    from .api import list_models

    table = list_models(task=args.task)
    with _wide_pandas():
        print(table.to_string(index=False))
    return 0


def _lines(source) -> list[str]:
    """One text per line, blank lines kept (they get no vector), so ``origin_index`` is the line number from 0."""
    return [line.rstrip("\n").rstrip("\r") for line in source]


def _read_texts(args: argparse.Namespace) -> list[str]:
    if args.file:
        if args.file == "-":
            return _lines(sys.stdin)
        try:
            with open(args.file, encoding="utf-8") as source:
                return _lines(source)
        except FileNotFoundError:
            raise InputError(f"--file {args.file}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"--file {args.file} is a folder; give a text file, one text per line") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"--file {args.file} is not UTF-8 text ({exc})") from None
    if args.text:
        return list(args.text)
    if not sys.stdin.isatty():
        return _lines(sys.stdin)
    raise InputError("give TEXT arguments, --file PATH (one text per line, '-' for stdin), or pipe text in")


def _vectors_as_lists(df, columns):
    return df.assign(**{c: df[c].map(lambda v: [float(x) for x in v]) for c in columns})


def _cmd_predict(args: argparse.Namespace) -> int:
    from .api import load

    options = {"batch_size": args.batch_size, "progress": False if args.no_progress else None,
               "subtoken_pooling": args.subtoken_pooling, "pooling": args.pooling, "normalize": args.normalize}
    _check_before_loading(args.alias, args.level, options, offline=args.offline or None)
    texts = _read_texts(args)
    pipe = load(args.alias, offline=args.offline or None, precision=args.precision, threads=args.threads,
                engine=args.engine)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix == ".parquet":
        from .stream import predict_to_parquet

        predict_to_parquet(pipe, texts, out, output_level=args.level, **options)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    if out is not None and out.suffix not in (".csv", ".jsonl"):
        raise InputError(f"--out must end in .parquet, .csv or .jsonl, got {out.name}")
    df = pipe.predict(texts, output_level=args.level, **options)
    column = pipe.spec.embedding_column
    fmt = {".csv": "csv", ".jsonl": "jsonl"}[out.suffix] if out is not None else args.format
    if fmt == "table":
        with _wide_pandas():
            print(df.to_string(max_rows=None) if args.all_rows else df)
        return 0
    target = out if out is not None else sys.stdout
    if fmt == "csv":  # the vector as space-separated numbers, one cell
        df.assign(**{column: df[column].map(lambda v: " ".join(map(repr, v.tolist())))}).to_csv(target, index=False)
    else:  # one JSON object per row, the vector a list of numbers
        _vectors_as_lists(df, [column]).to_json(target, orient="records", lines=True, force_ascii=False)
    if out is not None:
        print(f"wrote {len(df)} rows to {out}", file=sys.stderr)
    return 0


def _check_before_loading(alias: str, level: str | None, options: dict, offline: bool | None = None) -> None:
    """Options checked against the registry entry (or the folder's config) before stdin is read or
    a model downloaded; predict() checks them again against the loaded model (its pooler). Several
    references (``'bert en.embed_sentence.minilm_l6'``): each one; NLU's non-embedding ones are refused first."""
    from .api import resolve_spec
    from .options import ModelFacts, resolve_options
    from .registry import check_request
    from .specs import looks_like_folder, spec_from_folder

    parts = alias.split()
    if len(parts) > 1:
        check_request(parts)
        for part in parts:
            _check_before_loading(part, level, options, offline)
        return
    if looks_like_folder(alias):
        spec = spec_from_folder(alias)
    else:  # a Hub id (or a catalogue row's repo) costs its config.json (small, cached), never its weights
        spec = resolve_spec(alias, offline=offline)
    facts = ModelFacts(hidden_size=spec.dim, num_layers=spec.layers, has_pooler=True, max_positions=spec.max_length)
    resolve_options(spec, facts, level, options)


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint, data_path_for

    out = convert_checkpoint(Path(args.path), Path(args.out), precision=args.precision, graph=args.graph)
    print(out)
    print(data_path_for(out))  # the weights: keep the two files together
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .api import resolve_spec
    from .artifacts import download

    wanted = [resolve_spec(alias) for alias in args.aliases]  # registry, NLU's catalogue, hf:owner/name
    for path in download(wanted, progress=False if args.no_progress else None, force=args.force):
        print(path)
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from .artifacts import cache_entries, clear_cache, sweep_stale
    from .cache import cache_root

    if args.action == "list":
        swept = sweep_stale()
        entries = cache_entries()
        print(f"cache root: {cache_root()}")
        if swept:
            print(f"removed {swept / 1e6:.1f} MB of scratch left by killed downloads or conversions")
        for entry in entries:
            print(_format_entry(entry))
        return 0
    if args.action == "verify":
        return _verify_cache(args.alias)
    freed = clear_cache(args.alias)
    print(f"freed {freed / 1e6:.1f} MB")
    return 0


def _verify_cache(alias: str | None) -> int:
    """Read every cached file in full; report and remove what is damaged. Exit status 1 when anything was."""
    from .artifacts import cache_entries, sweep_stale, verify_entry
    from .convert.store import verify_conversion
    from .registry import default_registry

    sweep_stale()
    entries = cache_entries()
    if alias is not None:
        name = default_registry().resolve(alias).alias
        entries = [e for e in entries if name in e.aliases]
    damaged = []
    for entry in entries:
        problems = verify_conversion(entry.path) if entry.kind == "onnx" else verify_entry(entry)
        print(f"{'DAMAGED' if problems else 'ok':8} {entry.kind:5} {entry.detail}  {entry.path}")
        for problem in problems:
            print(f"           {problem}")
        if problems:
            damaged.append(entry)
    print(f"checked {len(entries)} cache entries: {len(damaged)} damaged")
    if not damaged:
        return 0
    names = sorted({a for e in damaged for a in e.aliases}) or ["ALIAS"]
    print("Damaged files and conversions were removed. Fetch them again with `nlu-lite download "
          f"{' '.join(names)}`; the next load converts again.")
    return 1


def _format_entry(entry) -> str:
    if isinstance(entry, dict):
        fields = entry
    else:
        fields = getattr(entry, "__dict__", None) or {f: getattr(entry, f) for f in getattr(entry, "_fields", ())}
    size = fields.get("size_bytes", fields.get("size", 0)) or 0
    rest = "  ".join(f"{k}={v}" for k, v in fields.items() if k not in ("size_bytes", "size"))
    return f"{size / 1e6:10.1f} MB  {rest}"


class _wide_pandas:
    def __enter__(self):
        import pandas as pd

        self._ctx = pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60)
        self._ctx.__enter__()

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlu-lite", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and decisions")
    parser.add_argument("--version", action="version", version=f"nlu-lite {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the registry's models and whether they are cached")
    p.add_argument("--task", choices=TASKS)
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("predict", help="embed texts (arguments, --file, or stdin)")
    p.add_argument("alias", help="model alias (e.g. en.embed.minilm_l6) or a local checkpoint folder")
    p.add_argument("text", nargs="*", help="texts to embed; omit to read stdin")
    p.add_argument("--file", help="a file with one text per line ('-' for stdin)")
    p.add_argument("--level", choices=OUTPUT_LEVELS, default=None)
    p.add_argument("--out", help="write to .parquet, .csv or .jsonl instead of printing")
    p.add_argument("--format", choices=["table", "csv", "jsonl"], default="table",
                   help="stdout: a table for reading (default), or csv / jsonl for pipes, every row in full")
    p.add_argument("--all-rows", action="store_true", help="table: print every row, not pandas' cut")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--subtoken-pooling", choices=SUBTOKEN_POOLINGS, default=None,
                   help="token level: a word's vector from its word pieces (default: first)")
    p.add_argument("--pooling", choices=SENTENCE_POOLINGS, default=None,
                   help="sentence/document level: pooling (default: the model's)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="L2-normalise the vectors (default: the model's, for sentences and documents)")
    p.add_argument("--precision", choices=LOAD_PRECISIONS, default=None,
                   help="fp32 (default), int8 (onnxruntime) or bf16 (OpenVINO, on CPUs with AVX512_BF16 or AMX)")
    p.add_argument("--engine", choices=ENGINE_CHOICES, default=None,
                   help="onnxruntime (default), openvino, or auto (this machine's faster one for the precision)")
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: one per core)")
    p.add_argument("--offline", action="store_true", help="never touch the network")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("convert", help="convert a local checkpoint folder (any supported family) to ONNX: OUT (graph) and OUT.data (weights)")
    p.add_argument("path")
    p.add_argument("out")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--graph", choices=GRAPH_VARIANTS, default="fused",
                   help="fused: onnxruntime's Attention/BiasGelu kernels (faster); standard: plain ONNX ops")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("download", help="fetch models into the cache for offline use (damaged cached files are "
                                        "read in full and fetched again)")
    p.add_argument("aliases", nargs="+")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--force", action="store_true", help="fetch every file again, even those that check out")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("cache", help="list, verify or clear cached models")
    p.add_argument("action", choices=["list", "verify", "clear"],
                   help="verify: read every cached file in full, remove damaged ones (exit status 1 if any)")
    p.add_argument("alias", nargs="?", default=None, help="with verify or clear: only this model")
    p.set_defaults(func=_cmd_cache)
    return parser


def _version() -> str:
    return sys.modules[__package__].__version__  # the package, imported before any of its modules


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "predict" and not any(e.startswith("-") and e != "-" for e in extra):
        args.text = [*args.text, *extra]  # texts after options: `predict ALIAS --level sentence "text"`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except NluLiteError as exc:
        print(f"nlu-lite: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
