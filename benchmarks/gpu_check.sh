#!/usr/bin/env bash
# One device call: the core test suite on a CUDA machine (device "auto" is the GPU there, and
# the CUDA-only tests run), then the GPU figures. Set up as ../shared/GPU.md says: the wheels
# the machine lacks in .whl/ (umap-learn, pynndescent, platformdirs). Logs go to $OUT.
#     bash benchmarks/gpu_check.sh [tests|bench|cpu|all]
# cpu: the 1M x 128 k-NN graph (issue 22) with the machine's cores and with 2 of them.
set -o pipefail
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
what=${1:-all}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi -L; nproc; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
if [ "$what" = tests ] || [ "$what" = all ]; then
  timeout "${TEST_TIMEOUT:-240}" python3 -m pytest -q -p no:cacheprovider -n 12 -rfEs \
    --ignore=tests/gui --ignore=tests/test_packaging.py --ignore=tests/test_architecture.py tests \
    2>&1 | tee "$OUT/tests.log" | grep -E "FAILED|ERROR|passed|failed|SKIPPED.*CUDA" | head -60
  failed=$(grep -E "^(FAILED|ERROR) " "$OUT/tests.log" | awk '{print $2}' | sed 's/ - .*//' | sort -u)
  if [ -n "$failed" ]; then  # again, one process, so that a clash between xdist workers is told apart
    echo "--- failures again, serially"
    timeout 120 python3 -m pytest -q -p no:cacheprovider --tb=short $failed 2>&1 | tee "$OUT/failed_again.log" | tail -60
  fi
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  timeout 150 python3 benchmarks/bench_gpu_knn.py --skip-old 2>&1 | tee "$OUT/knn.log"
  timeout 120 python3 benchmarks/bench_embed.py --device cuda 2>&1 | tail -16 | tee "$OUT/embed.log"
  timeout 60 python3 benchmarks/bench_finetune.py --device cuda 2>&1 | tail -12 | tee "$OUT/finetune.log"
fi
if [ "$what" = cpu ] || [ "$what" = all ]; then
  python3 benchmarks/make_blobs_npy.py /tmp/blobs_1m.npy --n 1000000 --dim 128 --blobs 50
  for t in $(nproc) 2; do
    s0=$(date +%s.%N)
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t timeout 200 python3 -m explorer.cli neighbors --vectors /tmp/blobs_1m.npy \
      -k 10 --quiet --json --query-index 0 --out /tmp/nb.npy | python3 -c "import json,sys; d=json.load(sys.stdin); print(d.get('info', d) if isinstance(d, dict) else d)" | cut -c1-400
    echo "threads $t: neighbors 1M wall $(awk "BEGIN{print $(date +%s.%N) - $s0}") s" | tee -a "$OUT/neighbors_1m.log"
  done
fi
