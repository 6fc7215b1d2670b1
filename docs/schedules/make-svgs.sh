#!/usr/bin/env bash
# Redraws every curve of docs/schedules.md with the `trainer schedule` CLI.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --bin trainer
t=target/debug/trainer
out=docs/schedules
draw() { # name base_lr steps config [metrics]
    local extra=()
    if [ $# -ge 5 ]; then extra=(--metrics "$5"); fi
    "$t" schedule --config "$4" --base-lr "$2" --steps "$3" --svg "$out/$1.svg" "${extra[@]}" >/dev/null
}
draw step 0.1 20 '{"scheduler": "StepLR", "params": {"step_size": 3, "gamma": 0.5}}'
draw multistep 0.1 20 '{"scheduler": "MultiStepLR", "params": {"milestones": [5, 10, 10], "gamma": 0.1}}'
draw exponential 0.05 30 '{"scheduler": "ExponentialLR", "params": {"gamma": 0.9}}'
draw cosine 0.1 25 '{"scheduler": "CosineAnnealingLR", "params": {"T_max": 10, "eta_min": 0.001}}'
draw cosine-warm-restarts 0.1 40 '{"scheduler": "CosineAnnealingWarmRestarts", "params": {"T_0": 5, "T_mult": 2, "eta_min": 0.01}}'
draw linear 0.1 10 '{"scheduler": "LinearLR", "params": {"start_factor": 0.1, "end_factor": 1.0, "total_iters": 5}}'
draw constant-factor 0.1 8 '{"scheduler": "ConstantLR", "params": {"factor": 0.5, "total_iters": 4}}'
draw polynomial 0.1 12 '{"scheduler": "PolynomialLR", "params": {"total_iters": 10, "power": 2.0}}'
draw one-cycle 0.1 29 '{"scheduler": "OneCycleLR", "params": {"max_lr": 0.1, "total_steps": 30}}'
draw cyclic 0.01 25 '{"scheduler": "CyclicLR", "params": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4, "step_size_down": 6}}'
draw plateau 0.1 15 '{"scheduler": "ReduceLROnPlateau", "params": {"factor": 0.5, "patience": 2, "cooldown": 1, "min_lr": 0.01}}' \
    1.0,0.9,0.95,0.95,0.95,0.95,0.8,0.85,0.85,0.85,0.85,0.85,0.85,0.85,0.85
draw warmup-linear-cosine 0.1 40 '{"scheduler": "Warmup", "params": {"warmup_steps": 10, "then": {"scheduler": "CosineAnnealingLR", "params": {"T_max": 30}}}}'
draw warmup-exponential-step 0.1 40 '{"scheduler": "Warmup", "params": {"warmup_steps": 10, "mode": "exponential", "then": {"scheduler": "StepLR", "params": {"step_size": 10, "gamma": 0.5}}}}'
draw sequential 0.1 25 '{"scheduler": "SequentialLR", "params": {"schedulers": [["LinearLR", {"start_factor": 0.01, "end_factor": 1.0, "total_iters": 5}], ["CosineAnnealingLR", {"T_max": 15, "eta_min": 0.0}]], "milestones": [5]}}'
draw chained 1.0 8 '{"scheduler": "ChainedScheduler", "params": {"schedulers": [["ConstantLR", {"factor": 0.1, "total_iters": 3}], ["ExponentialLR", {"gamma": 0.9}]]}}'
echo "drew $(ls $out/*.svg | wc -l) curves in $out"
