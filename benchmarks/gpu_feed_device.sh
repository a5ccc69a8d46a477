#!/usr/bin/env bash
# The GPU figures of issue 15, as one prepared run on a machine with one NVIDIA GPU:
# installs the project from its own files, then runs benchmarks/gpu_feed.py (ResNet-50 at
# 224 px and SSD300 at 300 px; ceiling vs the kcv pipeline with and without augmentation;
# tensorflow, jax and torch) with --profile, everything printed to stdout, inside ~10 min.
#
#   bash benchmarks/gpu_feed_device.sh            # from the repository root
#   BUDGET_S=540 STEPS=20 BACKENDS=jax,torch bash benchmarks/gpu_feed_device.sh
#
# Installing. The machine may have no network (the H200 machines lent to sessions cannot
# reach anything), so nothing is resolved from a registry here:
#   * `pip install --no-deps --no-build-isolation -e .` installs the project itself and
#     keeps the machine's own GPU builds of torch and jax. `pip install -e ".[test]"` would
#     instead pull `torch==2.13.0` (the pin that resolves to the CPU wheel on the CPU
#     machines only because their pip reads the CPU index; from PyPI on a GPU box it is
#     the CUDA build plus ~3 GB of nvidia-* wheels) over the image's CUDA torch, and needs
#     the network. Jax needs its CUDA plugin (`jax[cuda12]` / jax-cuda13-plugin), which the
#     `jax>=0.4.30` extra does not ask for.
#   * Missing pure-Python packages travel as wheels in .whl/ (git-ignored; see
#     /work/.library/device/README.md): keras, albumentations and their needs, e.g.
#       pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#         keras==3.15.1 namex optree albumentations==2.0.8 albucore pydantic pydantic-core \
#         annotated-types typing-inspection stringzilla simsimd
#     and they are installed with --no-index into /tmp/site.
#   * TensorFlow (~600 MB) does not fit that carry limit (64 MiB). Every backend's kcv
#     pipeline runs through tf.data (DataLoader.as_tf_dataset), so without TensorFlow no
#     figure can be taken: the script then says so and stops.
set -u
cd "$(dirname "$0")/.."
BUDGET_S=${BUDGET_S:-540}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
BACKENDS=${BACKENDS:-tensorflow,jax,torch}
PY=${PYTHON:-python3}
START=$(date +%s)
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 NO_ALBUMENTATIONS_UPDATE=1
# JAX takes 75% of the GPU by default; each backend runs in its own process anyway.
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}

echo "== machine"
date -u
uptime
echo "cores: $(nproc)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: none"
$PY --version

echo "== install"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! $PY -m pip install -q --no-deps --no-build-isolation -e . ; then
  echo "editable install failed; using PYTHONPATH=$PWD"
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
$PY - <<'EOF'
import importlib
for name in ("keras", "tensorflow", "jax", "torch", "albumentations", "cv2", "yaml",
             "kerascv_suite"):
    try:
        module = importlib.import_module(name)
        print(f"{name:15s} {getattr(module, '__version__', 'ok')}")
    except Exception as error:  # noqa: BLE001 - report every missing piece
        print(f"{name:15s} MISSING ({type(error).__name__}: {str(error)[:120]})")
try:
    import jax
    print("jax devices:", jax.devices())
except Exception as error:  # noqa: BLE001
    print("jax devices: none", error)
try:
    import torch
    print("torch cuda:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as error:  # noqa: BLE001
    print("torch: none", error)
EOF

for needed in keras tensorflow albumentations; do
  if ! $PY -c "import $needed" 2>/dev/null; then
    echo "== cannot measure: $needed is not installed (the kcv pipeline needs keras,"
    echo "   albumentations and tensorflow's tf.data under every backend); see the header."
    exit 3
  fi
done

run_backends=""
for backend in ${BACKENDS//,/ }; do
  if $PY -c "import $backend" 2>/dev/null; then
    run_backends="$run_backends${run_backends:+,}$backend"
  else
    echo "== skipping $backend: not installed"
  fi
done

LEFT=$(( BUDGET_S - ($(date +%s) - START) ))
NB=$(echo "$run_backends" | tr ',' '\n' | grep -c .)
PER=$(( (LEFT - 20) / (NB > 0 ? NB : 1) ))
echo "== benchmark: backends $run_backends, $STEPS steps (+$WARMUP warm-up), ${PER} s per backend"
timeout $(( LEFT > 30 ? LEFT - 5 : 25 )) $PY benchmarks/gpu_feed.py --backends "$run_backends" \
  --steps "$STEPS" --warmup "$WARMUP" --profile --timeout "$PER"
code=$?
echo "== done in $(( $(date +%s) - START )) s (exit $code)"
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
exit $code
