#!/usr/bin/env bash
# Reproduces the simulator experiments of docs/simulator.md on workloads generated here (the
# artifact's traces are a sample; the policy is judged on workloads it has not seen): 16 H800,
# SLO TTFT 10 s / TBT 0.1 s unless noted, 600 s of Poisson arrivals per point, lengths drawn from
# the built-in ShareGPT-like trace. Systems: aegaeon (the default policy, 1 adaptive prefill device),
# aegaeon-paper (--no-elastic-memory --no-immediate-turns --no-bounded-rounds, 6P + 10D as the
# paper), request-level, static-mux. Every system but aegaeon-paper (the artifact admits
# everything) runs with admission (a prompt still waiting at its TTFT deadline is turned away);
# the baselines also run without it, and each keeps whichever attains more (report.py).
#   models.csv     qos / request attainment vs number of models, 0.1 and 0.5 req/s per model,
#                  the mean over MODEL_SEEDS workloads (near the most models a system holds,
#                  one draw of arrivals can tip a point either way)
#   held.csv       most models each system holds at >= 90% mean qos (models per GPU)
#   rate.csv       attainment vs per-model rate (40 models) at SLO scale 1.0, 0.5, 0.3
#   variants.csv   rate sweeps on other workloads: x2 input, x2 output, bursty CV 3 + Zipf 1,
#                  h2d efficiency 0.15, H100, H20, A100 (the artifact has no 9B/13B A10 profiles)
#   ablation.csv   the default policy with one idea turned off at a time (mean over MODEL_SEEDS)
#   plan.txt       `aegaeon plan` on a long-tail mix (100 models, mean 0.037 req/s, Zipf 1, CV 2, H20)
#   *.png          the plots (python3-matplotlib)
# Usage: bench/experiments/run.sh   (env: AEGAEON_BIN, OUT, DURATION, SEED, MODEL_SEEDS; QUICK=1 for
# a smoke run)
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-build/experiments}
DURATION=${DURATION:-600}
SEED=${SEED:-7}
MODEL_SEEDS=${MODEL_SEEDS:-"7 8 9"}
BIN=${AEGAEON_BIN:-}
if [[ -z "$BIN" ]]; then
  for candidate in build/ci/cmd/aegaeon build/release/cmd/aegaeon build/*/cmd/aegaeon; do
    [[ -x "$candidate" ]] && { BIN=$candidate; break; }
  done
fi
[[ -x "${BIN:-}" ]] || { echo "run.sh: no aegaeon binary; build it or set AEGAEON_BIN" >&2; exit 2; }
mkdir -p "$OUT/json"
: >"$OUT/stderr.log"
PAPER=(--no-elastic-memory --no-immediate-turns --no-bounded-rounds --no-admission --prefill 6)
if [[ -n "${QUICK:-}" ]]; then
  DURATION=120; M01="64 96"; M05="40 56"; RATES="0.1 0.5"; MODEL_SEEDS=7
else
  M01="48 64 72 80 88 96 104 112 128"; M05="32 40 48 56 64 72"; RATES="0.05 0.1 0.2 0.3 0.4 0.5 0.6 0.7"
fi

# sim NAME ARGS... -> $OUT/json/NAME.json (aegaeon + baselines), NAME-noadm.json (the baselines
# without admission) and NAME-paper.json
sim() {
  local name=$1; shift
  "$BIN" simulate --device "${DEVICE:-H800}" --devices 16 --duration "$DURATION" --seed "$SEED" "$@" \
    --system aegaeon,request-level,static-mux --json "$OUT/json/$name.json" >/dev/null 2>>"$OUT/stderr.log"
  "$BIN" simulate --device "${DEVICE:-H800}" --devices 16 --duration "$DURATION" --seed "$SEED" "$@" --no-admission \
    --system request-level,static-mux --json "$OUT/json/$name-noadm.json" >/dev/null 2>>"$OUT/stderr.log"
  "$BIN" simulate --device "${DEVICE:-H800}" --devices 16 --duration "$DURATION" --seed "$SEED" "$@" "${PAPER[@]}" \
    --system aegaeon --json "$OUT/json/$name-paper.json" >/dev/null 2>>"$OUT/stderr.log"
}
progress() { echo "run.sh: $*" >&2; }

progress "attainment vs number of models (0.1, 0.5 req/s)"
for seed in $MODEL_SEEDS; do
  for m in $M01; do SEED=$seed sim "models-$m-0.1-s$seed" --models "$m" --rate 0.1; done
  for m in $M05; do SEED=$seed sim "models-$m-0.5-s$seed" --models "$m" --rate 0.5; done
done

progress "attainment vs rate (40 models), SLO scale 1.0 0.5 0.3"
for scale in 1.0 0.5 0.3; do
  ttft=$(python3 -c "print(10*$scale)"); tbt=$(python3 -c "print(0.1*$scale)")
  for rate in $RATES; do sim "rate-$rate-$scale" --models 40 --rate "$rate" --ttft "$ttft" --tbt "$tbt"; done
done

progress "other workloads and devices"
declare -A VARIANT=(
  [input-x2]="--models 40 --input-scale 2"
  [output-x2]="--models 40 --output-scale 2"
  [bursty-zipf]="--models 40 --cv 3 --zipf 1"
  [h2d-0.15]="--models 40 --h2d-efficiency 0.15"
  [H100]="--models 40"
  [H20]="--models 24"
  [A100]="--models 32"
)
for v in "${!VARIANT[@]}"; do
  device=H800; [[ $v == H100 || $v == H20 || $v == A100 ]] && device=$v
  for rate in 0.1 0.3 0.5; do
    # shellcheck disable=SC2086
    DEVICE=$device sim "variant-$v-$rate" ${VARIANT[$v]} --rate "$rate"
  done
done

progress "ablation"
for point in "96 0.1" "56 0.5"; do
  read -r m rate <<<"$point"
  for flag in none --no-adaptive-split --no-admission --no-elastic-memory --no-immediate-turns --no-bounded-rounds --no-prefetch; do
    extra=(); [[ $flag != none ]] && extra=("$flag")
    for p in 0 1 2; do
      for seed in $MODEL_SEEDS; do
        "$BIN" simulate --device H800 --devices 16 --duration "$DURATION" --seed "$seed" --models "$m" --rate "$rate" \
          --system aegaeon --prefill "$p" "${extra[@]}" --json "$OUT/json/ablation-$m-$rate-${flag#--}-$p-s$seed.json" \
          >/dev/null 2>>"$OUT/stderr.log" || true  # the paper's device needs a prefill device: P=0 fails
      done
    done
  done
done

progress "plan on a long-tail mix"
"$BIN" plan --device H20 --max-devices 64 --models 100 --rate 0.037 --zipf 1 --cv 2 --duration $((DURATION * 3)) --seed "$SEED" \
  --json "$OUT/plan.json" >"$OUT/plan.txt" 2>>"$OUT/stderr.log"

/usr/bin/python3 bench/experiments/report.py "$OUT" "$M01" "$M05" "$RATES"
progress "results in $OUT"
