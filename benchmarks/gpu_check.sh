#!/usr/bin/env bash
# The GPU check: device tests, `solve` on the GPU in both precisions, and the step-time
# scaling benchmark on the GPU. Run from the repository root on a machine with a CUDA GPU
# and torch, typer, rich, scipy, matplotlib and pytest installed; results go to $OUT
# (default ./gpu-check).
set -u
OUT=$(realpath -m "${OUT:-gpu-check}")
REPO=$(pwd)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# Lay the package out as it is installed (pinn_gmnm.problems, pinn_gmnm.cli) without pip.
PKG=$(mktemp -d)
cp -r pinn_gmnm "$PKG/" && cp -r problems "$PKG/pinn_gmnm/problems" && cp -r cli "$PKG/pinn_gmnm/cli"
export PYTHONPATH="$PKG"
cd "$PKG"  # so that the checkout's own pinn_gmnm folder does not shadow the laid-out package
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 240 python3 -m pytest -q -p no:cacheprovider --rootdir "$REPO" "$REPO/tests/test_device.py" \
    "$REPO/tests/test_gmnm_layer.py" "$REPO/tests/test_derivatives.py" "$REPO/tests/test_training.py" \
    "$REPO/tests/test_gauss_newton.py" 2>&1 | tail -15 | tee "$OUT/tests.log"
for dtype in float64 float32; do
    /usr/bin/time -f "wall %e s" python3 -m pinn_gmnm.cli.main solve poisson --device cuda \
        --dtype "$dtype" --out "$OUT/runs" --quiet 2>&1 | tee -a "$OUT/solve.log"
done
timeout 200 python3 "$REPO/benchmarks/scaling.py" --devices cuda --ranks 0 --steps 5 \
    --sizes 1000,10000,100000,1000000 --out "$OUT/scaling-gpu.md"
