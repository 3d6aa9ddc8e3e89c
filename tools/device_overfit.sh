#!/bin/bash
# Kodak encoded by the overfitted codec on the lent GPU, in one call; the files come back here to
# be decoded and measured on the CPU (benchmarks/overfit_gpu.py report).
#
# Here, once:  tools/fetch_device_wheels.sh
#              mkdir -p .kodak && cp ../shared/data/kodak/*.png .kodak/      (.kodak is git-ignored)
# The call (device tool `run`, carry [".whl", ".kodak"]):
#              tools/device_overfit.sh SECONDS ALONE [--levers LIST] --jobs EFFORT:IMAGES:QUALITIES ...
# runs the CUDA tests CI cannot (whole log: $OUT/pytest.log), with --levers the seconds a step of
# benchmarks/overfit_levers.py's levers on the GPU (e.g. eager,graphs,cudagraphs), then encodes
# (the first ALONE jobs one at a time, the rest by many processes at once under CUDA MPS where it
# starts) until SECONDS have passed. The levers get up to 450 s of their own (cudagraphs compiled
# for 155 s on an H200). The files
# stay in /tmp/gpu on the machine, so a next call while it is warm skips them; all made so far
# come back as $OUT/gpu.tgz. Then here:
#              tar xzf gpu.tgz -C DIR && python benchmarks/overfit_gpu.py report --files DIR/gpu
set -uo pipefail
seconds=$1 alone=$2 levers=
shift 2
if [ "${1:-}" = --levers ]; then levers=$2; shift 2; fi
out=${OUT:-/tmp/out}
mkdir -p "$out"
site=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv,noheader
echo "cores: $(nproc)"
timeout 180 python3 -m pytest -q -p no:cacheprovider -rA tests/test_overfit.py tests/test_determinism.py -k gpu \
    > "$out/pytest.log" 2>&1
tail -n 3 "$out/pytest.log"
# MPS lets the encodes' small kernels from many processes share the GPU at once; its daemon
# outlives a call, so a later call on the same machine finds it running
# (pgrep -f: -x compares only the first 15 characters of a process's name, so it never matched)
pgrep -f '^nvidia-cuda-mps-control' >/dev/null || nvidia-cuda-mps-control -d || echo "no MPS daemon"
pgrep -f '^nvidia-cuda-mps-control' >/dev/null && mps=1 || mps=0
if ! timeout 60 python3 -c "import torch; torch.ones(2, device='cuda').sum().item()"; then
    echo quit | nvidia-cuda-mps-control; mps=0; echo "MPS stopped: a client failed"
fi
if [ -n "$levers" ]; then
    timeout 450 python3 benchmarks/overfit_levers.py --device cuda --image .kodak/kodim01.png --threads 1 \
        --steps 30 --levers "$levers" 2>&1 | tee "$out/levers.log" | grep -v Warning
fi
nvidia-smi dmon -s u -d 10 > "$out/dmon.log" 2>&1 &
workers=$(( $(nproc) - 2 ))
timeout "$seconds" python3 benchmarks/overfit_gpu.py encode --kodak .kodak --out /tmp/gpu --device cuda \
    --workers "$workers" --alone "$alone" "$@" 2>&1 | tee "$out/encode.log" | tail -n 60
echo "encode stopped (rc ${PIPESTATUS[0]}; 124: the deadline); MPS $mps, $workers workers"
kill %1 2>/dev/null
ls /tmp/gpu/*/ 2>/dev/null | grep -c gcz
tar czf "$out/gpu.tgz" -C /tmp gpu
