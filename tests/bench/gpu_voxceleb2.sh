#!/usr/bin/env bash
# Issue 16, the GPU step: run from the repository root on a machine with a CUDA GPU (not run yet; about
# 5 minutes by the CPU timings of its parts, most of it writing the clips):
#   bash tests/bench/gpu_voxceleb2.sh [OUT_DIR]
# 1. `python -m ssfbench bench --device cuda --suite voxceleb2`: writes 16 VoxCeleb2-layout H.264 clips
#    (224 px, 25 fps, keyframe every 100 frames), measures the old and new reader on one core of
#    this machine's CPU, and the ranking encoder's training rate at 224 px in bf16 on the GPU
#    (32 windows x 12 frames a step): the cores one GPU needs, measured instead of estimated.
# 2. A short pretraining from those mp4s at 224 px on the GPU with --workers auto, whose console and
#    best.json say whether the data pipeline or the model was the bottleneck. With 13 training clips
#    and 8 visits a step, every step ends an epoch (validation and checkpoint writes, which
#    train_frames_per_s leaves out, but during which the workers read ahead): read its verdict as
#    an upper bound on how well the readers keep up.
# Everything it measures lands in OUT_DIR (default $OUT, else ./gpu-voxceleb2): bench JSON, console
# logs, best.json. Add the rows to BENCHMARKS.md ("VoxCeleb2 from mp4", GPU) with the device name.
set -euo pipefail
out="${1:-${OUT:-gpu-voxceleb2}}"
mkdir -p "$out"
data="$out/bench-data"
python -m pip install -q --no-deps -e . >/dev/null 2>&1 || true
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
nproc | tee "$out/cores.txt"
python -m ssfbench bench --device cuda --suite voxceleb2 --rounds 2 --data-dir "$data" --out "$out/bench-voxceleb2-gpu.json" \
  2>&1 | tee "$out/bench.log"
python -m ssfbench pretrain --method ranking --k 2 --pretrain-data voxceleb2 --root "voxceleb2=$data/voxceleb2-h264-224" \
  --image-size 224 --batch-size 32 --steps 40 --device cuda --workers auto --quiet --out "$out/pretrain" \
  2>&1 | tee "$out/pretrain.log"
cp "$out"/pretrain/runs/*/best.json "$out/pretrain-best.json"
grep -h "bottleneck" "$out/pretrain.log"
