"""sha256 of the ONNX graph and weights nlu_lite builds for a tiny checkpoint of every family.

A refactor of the converters must leave these unchanged: run it before and after, diff the output.
The checkpoints are random transformers models saved once under ``--checkpoints`` (reused on the
next run, so both runs convert the very same files)::

    .venv/bin/python scripts/graph_fingerprints.py --checkpoints /tmp/fp > before.txt
    ... change the converters ...
    .venv/bin/python scripts/graph_fingerprints.py --checkpoints /tmp/fp > after.txt && diff before.txt after.txt

Needs the dev extra (torch, transformers).
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48,
         "vocab_size": 99}


def _configs():
    import transformers as t

    yield "bert", t.BertConfig(**SMALL), t.BertModel
    yield "roberta", t.RobertaConfig(**SMALL, max_position_embeddings=66), t.RobertaModel
    yield "xlm-roberta", t.XLMRobertaConfig(**SMALL, max_position_embeddings=66), t.XLMRobertaModel
    yield "camembert", t.CamembertConfig(**SMALL, max_position_embeddings=66), t.CamembertModel
    yield "distilbert", t.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=48, vocab_size=99), t.DistilBertModel
    yield "electra", t.ElectraConfig(**SMALL, embedding_size=16), t.ElectraModel
    yield "albert", t.AlbertConfig(**SMALL, embedding_size=16), t.AlbertModel
    yield "mpnet", t.MPNetConfig(**SMALL, max_position_embeddings=66), t.MPNetModel
    yield "deberta-v2", t.DebertaV2Config(**SMALL, relative_attention=True, position_buckets=16,
                                          pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                                          position_biased_input=False, norm_rel_ebd="layer_norm",
                                          share_att_key=True), t.DebertaV2Model


def build_checkpoints(root: Path) -> dict[str, Path]:
    import torch

    folders = {}
    for name, config, cls in _configs():
        folder = root / name
        if not (folder / "model.safetensors").is_file():
            torch.manual_seed(0)
            model = cls(config).eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
            model.save_pretrained(folder)
        folders[name] = folder
    return folders


def main() -> None:
    from nlu_lite.convert import convert_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, required=True)
    args = parser.parse_args()
    folders = build_checkpoints(args.checkpoints)
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in folders.items():
            for precision, graph in (("fp32", "fused"), ("fp32", "standard"), ("int8", "fused")):
                out = Path(tmp) / f"{name}-{precision}-{graph}.onnx"
                convert_checkpoint(folder, out, precision=precision, graph=graph)
                digest = hashlib.sha256(out.read_bytes())
                data = Path(str(out) + ".data")
                if data.is_file():
                    digest.update(data.read_bytes())
                print(f"{name:12s} {precision} {graph:8s} {digest.hexdigest()}")  # noqa: T201


if __name__ == "__main__":
    main()
