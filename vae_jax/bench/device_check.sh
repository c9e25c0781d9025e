#!/usr/bin/env bash
# The GPU check, run on a lent accelerator machine in one call (see docs/performance.md):
#
#   bash vae_jax/bench/device_check.sh OUTDIR [all|bench|precision|conv]
#   bash vae_jax/bench/device_check.sh OUTDIR study [float32|bfloat16]   (a call of its own)
#
# Expects the accelerator image's own jax/flax/optax/orbax (nothing can be
# installed from the network there), ml_collections as a wheel in
# .devcarry/whl and the IDX files in .devcarry/datasets (copied from
# ../shared/datasets, which does not travel). Writes into OUTDIR:
#   env.txt             nvidia-smi, versions, jax.devices()
#   benchmark_gpu.json  vae_jax/bench/benchmark.py --no-peers on the accelerator
#   pytest_gpu.log      the backend-agnostic numeric tests run on the accelerator
#   eval_gpu_{default,highest}.json  IWAE-5000 on the first 2,000 test images of
#                       the checkpoint copied to .devcarry/iwae_run, with TF32
#                       matmuls allowed and with full float32 (compare with the
#                       same command on a CPU: results/gpu/eval_iwae5000_n2000_cpu_highest.json)
#   conv_protocols.jsonl  issue 11: the Fashion-MNIST conv VAEs (plain, and with
#                       dropout 0.5 + max-norm 2) under two training protocols,
#                       3 seeds each (side by side on the one GPU): final test
#                       row and latent diagnostics of each run
#   study_gpu_<dtype>.log, study_gpu_<dtype>_passes.jsonl, study_gpu_<dtype>_timing.json
#                       issue 28: the seed study from an empty outdir on the one
#                       GPU, cut at $STUDY_SECONDS (default 540): the passes file
#                       gives the phases' time either way, the timing file (the
#                       summary's) only when it finished
# results/gpu/ keeps them as env_<gpu>.txt, benchmark_<gpu>.json,
# pytest_<gpu>_default_precision.log, eval_iwae5000_n2000_<gpu>_<precision>.json
# and conv_protocols.jsonl; vae_jax/bench/publish_device.py writes them into
# docs/performance.md.
set -u -o pipefail
out=${1:?usage: device_check.sh OUTDIR [all|bench|precision|conv|study [dtype]]}
part=${2:-all}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .devcarry/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export VAE_JAX_DATA_DIR=$PWD/.devcarry/datasets

{ nvidia-smi -L; nproc; python3 -c 'import jax, flax, optax, orbax.checkpoint, numpy
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__,
      "numpy", numpy.__version__); print(jax.devices())'; } 2>&1 | tee "$out/env.txt"

if [[ $part == all || $part == bench ]]; then
timeout 200 python3 vae_jax/bench/benchmark.py --no-peers --json="$out/benchmark_gpu.json" \
  2>&1 | tail -40
echo "benchmark exit: $?"

# Tests whose references are NumPy / closed forms / brute force: on the
# accelerator they check the same maths on its kernels (matmul precision included).
timeout 120 python3 -m pytest -q -p no:cacheprovider -rf --timeout=100 \
  tests/test_losses.py tests/test_iwae.py tests/test_kl_schedules.py tests/test_train.py \
  tests/test_metrics.py tests/test_sample_quality.py 2>&1 | tee "$out/pytest_gpu.log" | tail -40
echo "pytest exit: $?"
fi

if [[ $part == all || $part == precision ]]; then
for p in default highest; do
  timeout 100 python3 -m vae_jax.core.evaluate --workdir=.devcarry/iwae_run --iwae_samples=5000 \
    --num_examples=2000 --matmul_precision=$p --out="$out/eval_gpu_$p.json" --quiet
done
# The gradient test that failed at TF32, again at full float32.
JAX_DEFAULT_MATMUL_PRECISION=highest timeout 60 python3 -m pytest -q -p no:cacheprovider \
  tests/test_iwae.py 2>&1 | tail -3
fi

if [[ $part == all || $part == conv ]]; then
export XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache
summarize() {  # the last test row and latent diagnostics of each workdir, one JSON line each
  python3 - "$@" >> "$out/conv_protocols.jsonl" <<'PY'
import json, sys
for w in sys.argv[2:]:
  rows = [json.loads(l) for l in open(f'{w}/metrics.jsonl')]
  last = {r['split']: r for r in rows if 'split' in r}
  latent = [r for r in rows if 'active_units' in r][-1]
  print(json.dumps({'protocol': sys.argv[1], 'workdir': w.rsplit('/', 1)[-1],
                    'test': last['test'], 'latent': latent}))
PY
}
while read -r protocol flags; do
  for cfg in fashion_mnist_conv_vae_dropout_maxnorm_2d fashion_mnist_conv_vae_2d; do
    dirs=(); mkdir -p /tmp/conv/$protocol
    for seed in 0 1 2; do
      w=/tmp/conv/$protocol/${cfg}_seed$seed; dirs+=("$w")
      timeout 150 python3 -m vae_jax.main --config=experiments/configs/$cfg.py --workdir="$w" \
        --config.seed=$seed $flags --quiet > "$w.log" 2>&1 &
    done
    wait; summarize "$protocol" "${dirs[@]}"
    tail -1 "$out/conv_protocols.jsonl" | cut -c1-300
  done
done <<'EOF2'
keras30 --config.num_epochs=30 --config.lr_schedule=constant
cosine60 --config.num_epochs=60 --config.lr_schedule=cosine
EOF2
fi

if [[ $part == study ]]; then
export XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache
dtype=${3:-float32}
study=/tmp/study_gpu_$dtype
timeout "${STUDY_SECONDS:-540}" python3 -m vae_jax.cli study --outdir="$study" \
  --compute_dtype="$dtype" --quiet > "$out/study_gpu_$dtype.log" 2>&1
echo "study exit: $? (124: cut at ${STUDY_SECONDS:-540} s)"
cp "$study/study_passes.jsonl" "$out/study_gpu_${dtype}_passes.jsonl"
python3 - "$study/summary.json" "$out/study_gpu_${dtype}_timing.json" <<'PY'
import json, os, sys
if os.path.exists(sys.argv[1]):
  json.dump(json.load(open(sys.argv[1]))['timing'], open(sys.argv[2], 'w'), indent=1)
PY
tail -3 "$out/study_gpu_$dtype.log"
fi
