#!/usr/bin/env bash
# Regenerates the committed comparisons in results/ (run from anywhere; needs the package
# installed, e.g. `pip install torch==2.13.0 -e .`). Each folder is emptied first and then
# holds exactly one comparison directory (summary.md, summary.json, convergence.png,
# fields.png, runs/).
#
#   bash results/regenerate.sh            # the committed settings (about 1 hour on 2 cores)
#   bash results/regenerate.sh --quick    # tiny budgets, to check the script end to end;
#                                         # numbers are meaningless; writes to $OUT (default
#                                         # /tmp/gmnm-results-quick), never to results/
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=3          # seeds 0, 1, 2 for every model
BUDGET=60        # seconds of training per run (equal wall clock)
FIT_BUDGET=30    # seconds per run for the function-fitting catalogue
OUT=${OUT:-results}
QUICK=()        # extra options of every command in --quick mode
QUICK_STEPS=()  # and of the equal-steps command
if [ "${1:-}" = "--quick" ]; then
    SEEDS=1; BUDGET=2; FIT_BUDGET=2; OUT=${OUT_QUICK:-/tmp/gmnm-results-quick}
    QUICK=(--points 256 --eval-every 10)
    QUICK_STEPS=(--adam-steps 20 --lbfgs-steps 10)
fi

fresh() { rm -rf "$OUT/$1"; mkdir -p "$OUT/$1"; echo "$OUT/$1"; }

# 1. poisson, equal wall clock: every model with its own default training
#    (gmnm: auto = least squares + variable projection; mlp: the same; kan: Adam then
#    L-BFGS; pinn: the classic recipe). The last stage of each runs until the budget or its
#    own stopping rule, so no model is cut short by a step cap.
gmnm-pde compare poisson --seeds "$SEEDS" --budget "$BUDGET" ${QUICK[@]+"${QUICK[@]}"} \
    --out "$(fresh poisson-budget)" -q

# 1b. KAN alone, same budget, trained by Gauss-Newton: its default (Adam then L-BFGS) is
#     still in the Adam phase when the minute ends; this shows KAN at a better method.
gmnm-pde compare poisson --models kan --seeds "$SEEDS" --budget "$BUDGET" --method gauss-newton \
    ${QUICK[@]+"${QUICK[@]}"} --out "$(fresh poisson-budget-kan-gn)" -q

# 2. poisson, equal steps: every model Adam 1000 + L-BFGS 2000 (like-for-like; pinn keeps
#    its constant lr 1e-3, the others lr 1e-2 decaying to 1e-4), no time limit. Two runs at
#    a time, each pinned to one core: with equal steps the numbers are those of running
#    them one by one (only the times per step are single-core times).
gmnm-pde compare poisson --seeds "$SEEDS" --method adam-lbfgs ${QUICK[@]+"${QUICK[@]}"} \
    ${QUICK_STEPS[@]+"${QUICK_STEPS[@]}"} --jobs 2 --out "$(fresh poisson-steps)" -q

# 3. poisson-3d, equal wall clock, default training.
gmnm-pde compare poisson-3d --seeds "$SEEDS" --budget "$BUDGET" ${QUICK[@]+"${QUICK[@]}"} \
    --out "$(fresh poisson-3d-budget)" -q

# 4. The function-fitting catalogue (every target, equal wall clock); overview.md has one
#    row per target.
gmnm-pde fit all --seeds "$SEEDS" --budget "$FIT_BUDGET" ${QUICK[@]+"${QUICK[@]}"} \
    --out "$(fresh fit)" -q

echo "done: $OUT"
