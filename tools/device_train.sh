#!/bin/bash
# One ~9-minute training call on the lent GPU machine; chain calls while it stays warm.
#
# Here, once:  tools/fetch_device_wheels.sh
#              python -m gencompress.train.prepare data/gpu --from DATA --short-side 640 --format webp
# Each call (device tool `run`, carry [".whl", "data"]):
#              tools/device_train.sh vae-ctx 9 --init gencompress/weights/vae.safetensors --batch 16 --patch 256
#
# The checkpoint stays on the machine's disk (/tmp/gencompress-runs/MODEL) between calls, so each
# call resumes the schedule; each brings back only the exported weights and the evaluation log
# through $OUT. Extra arguments go to `gencompress train` (give the same ones every call).
set -euo pipefail
model=$1 minutes=$2
shift 2
site=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
mkdir -p "$site" && ln -sfn "$PWD/cli" "$site/gencompress_cli"
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
run=/tmp/gencompress-runs/$model
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
python3 -m gencompress_cli.main train data/gpu --model "$model" --out "$run" --device cuda --resume \
    --minutes "$minutes" --export "${OUT:-/tmp}/$model.safetensors" "$@" 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -n 40
if [ -f "$run/eval.jsonl" ]; then cp "$run/eval.jsonl" "${OUT:-/tmp}/"; fi
python3 - "$run" <<'PY'
import json, sys
meta = json.load(open(f"{sys.argv[1]}/checkpoint.json"))
print(f"step {meta['step']} of {meta['config']['steps']}")
PY
