#!/bin/sh
# Download, here, the wheels the GPU machine lacks (Python 3.12, x86-64) into .whl/ (git-ignored).
# The device image has torch, numpy, pillow, click, tqdm, safetensors; gencompress also needs these.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .whl
platforms=""
for n in 17 24 27 28 31 34 35 39; do platforms="$platforms --platform manylinux_2_${n}_x86_64"; done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    $platforms --platform manylinux2014_x86_64 -d .whl \
    compressai==1.2.8 constriction==0.5.0 pytorch-msssim==1.0.0 pytorch-optimizer==4.1.0 threadpoolctl==3.8.0
ls -l .whl
