#!/usr/bin/env bash
# The GPU suite of issue 13 in one call: GPU tests + every benchmark, irislib and guided-diffusion-sdk side by side.
#
#   bash benchmarks/gpu_suite.sh --prepare   # here, once: copy guided_diffusion into .gpu_carry/ (git-ignored)
#   bash benchmarks/gpu_suite.sh [ARGS]      # on the GPU machine (carry .gpu_carry): results in $OUT or ./
#
# ARGS go to benchmarks/gpu_suite.py (--skip-tests, --only train64,cap128,sample,p320,compile, --budget-s S).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ "${1:-}" == "--prepare" ]]; then
  src=$($PY -c "import guided_diffusion, os; print(os.path.dirname(guided_diffusion.__file__))")
  mkdir -p .gpu_carry && rm -rf .gpu_carry/guided_diffusion
  cp -r "$src" .gpu_carry/guided_diffusion && rm -rf .gpu_carry/guided_diffusion/__pycache__
  grep -qx '/.gpu_carry/' .git/info/exclude 2>/dev/null || echo '/.gpu_carry/' >> .git/info/exclude
  echo "copied $src to .gpu_carry/guided_diffusion (pure Python; carry .gpu_carry to the GPU machine)"
  exit 0
fi
export PYTHONPATH="$PWD:$PWD/.gpu_carry${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
out=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>/dev/null || true
set -o pipefail
$PY benchmarks/gpu_suite.py --json "$out/gpu_suite.json" "$@" 2>&1 | tee "$out/gpu_suite.log"
