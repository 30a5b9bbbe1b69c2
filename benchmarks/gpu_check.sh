#!/usr/bin/env bash
# The GPU checks, in one go, for a machine with an NVIDIA GPU and a CUDA
# build of JAX (plus flax, optax, absl-py, pytest; PyTorch with CUDA for the
# anchor). Run from the repository root; writes under ${OUT:-runs/gpu_check}.
#
#   bash benchmarks/gpu_check.sh
#
# 1. tests/test_cudnn.py: the cuDNN path against the scan runner on the GPU
#    (values and gradients in full float32; lengths with a zero, reverse,
#    time-major) and that cuDNN's custom call is what runs; the bfloat16
#    compute test.
# 2. benchmarks.throughput --device=gpu, float32 (TF32, the default of JAX,
#    cuDNN and PyTorch alike) and bfloat16: the scan runner, the cuDNN path,
#    Flax and PyTorch CUDA, interleaved.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu_check}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cudnn.py \
  "tests/cells/test_cells.py::test_bfloat16_compute_trains_in_a_jitted_step" \
  2>&1 | tee "$out/tests.log"
tests=${PIPESTATUS[0]}
for dtype in float32 bfloat16; do
  python3 -m benchmarks.throughput --device=gpu --dtype="$dtype" --rounds=9 \
    --out="$out/throughput_$dtype" 2>&1 | grep -v -i "tpu" | tee "$out/throughput_$dtype.log"
done
exit "$tests"
