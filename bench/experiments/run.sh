#!/usr/bin/env bash
# Reproduces the simulator experiments of docs/simulator.md (16 H800, 6P+10D, SLO TTFT 10 s /
# TBT 0.1 s unless noted):
#   models.csv   attainment vs number of models at 0.1 and 0.5 req/s per model
#                (8-40 from the artifact traces, 48-80 generated with trace lengths)
#   rate.csv     attainment vs per-model rate for 40 models, SLO scale 1.0, 0.5, 0.3
#   rate_generated.csv  the same at SLO 1.0 on generated 600 s Poisson workloads (the 40-model traces span 60 s)
#   goodput.csv  highest rate with >= 90% attainment per system, and aegaeon's ratio to each
#   plan.txt     `aegaeon plan` on the 40-model 0.5 req/s trace
# Usage: bench/experiments/run.sh   (env: AEGAEON_BIN, OUT, ARTIFACT, DURATION for generated runs)
set -euo pipefail
cd "$(dirname "$0")/../.."

ARTIFACT=${ARTIFACT:-../shared/data/aegaeon-artifact}
OUT=${OUT:-build/experiments}
DURATION=${DURATION:-600}
BIN=${AEGAEON_BIN:-}
if [[ -z "$BIN" ]]; then
  for candidate in build/ci/cmd/aegaeon build/*/cmd/aegaeon; do
    # Only a binary that already has the simulate subcommand will do.
    [[ -x "$candidate" ]] && "$candidate" --help 2>/dev/null | grep -q "^  simulate" && { BIN=$candidate; break; }
  done
fi
[[ -x "${BIN:-}" ]] || { echo "run.sh: no aegaeon binary; build it or set AEGAEON_BIN" >&2; exit 2; }
[[ -f "$ARTIFACT/profiles.csv" ]] || { echo "run.sh: $ARTIFACT/profiles.csv not found; set ARTIFACT" >&2; exit 2; }
mkdir -p "$OUT/json"
COMMON=(--profiles "$ARTIFACT/profiles.csv" --device H800 --devices 16 --prefill 6)
LENGTHS="$ARTIFACT/workloads/synth-40-0.5-1.0-1.0.csv"

# run NAME ARGS... -> $OUT/json/NAME.json
run() {
  local name=$1; shift
  "$BIN" simulate "${COMMON[@]}" --system all "$@" --json "$OUT/json/$name.json" >/dev/null 2>>"$OUT/stderr.log"
}

echo "run.sh: attainment vs number of models" >&2
for rate in 0.1 0.5; do
  for m in 8 16 24 32 40; do run "models-$m-$rate" --trace "$ARTIFACT/workloads/synth-$m-$rate-1.0-1.0.csv"; done
  for m in 48 64 80; do
    run "models-$m-$rate" --models "$m" --rate "$rate" --duration "$DURATION" --lengths "$LENGTHS" --seed 1
  done
done

echo "run.sh: attainment vs rate (40 models), SLO scales 1.0 0.5 0.3" >&2
for scale in 1.0 0.5 0.3; do
  ttft=$(python3 -c "print(10*$scale)"); tbt=$(python3 -c "print(0.1*$scale)")
  for rate in 0.05 0.1 0.15 0.2 0.25 0.3 0.5; do
    run "rate-$rate-$scale" --trace "$ARTIFACT/workloads/synth-40-$rate-1.0-1.0.csv" --ttft "$ttft" --tbt "$tbt"
  done
  for rate in 0.6 0.7; do  # beyond the artifact's traces: the 0.5 trace compressed in time
    run "rate-$rate-$scale" --trace "$ARTIFACT/workloads/synth-40-0.5-1.0-1.0.csv" \
      --rate-scale "$(python3 -c "print($rate/0.5)")" --ttft "$ttft" --tbt "$tbt"
  done
done

echo "run.sh: attainment vs rate (40 models, generated ${DURATION} s Poisson: the 40-model traces span 60 s)" >&2
for rate in 0.05 0.1 0.15 0.2 0.25 0.3 0.4 0.5 0.6 0.7; do
  run "rategen-$rate" --models 40 --rate "$rate" --duration "$DURATION" --lengths "$LENGTHS" --seed 1
done

echo "run.sh: aegaeon variants (no prefetch, admission control) vs rate" >&2
for rate in 0.1 0.2 0.3 0.5; do
  "$BIN" simulate "${COMMON[@]}" --system aegaeon --trace "$ARTIFACT/workloads/synth-40-$rate-1.0-1.0.csv" --no-prefetch \
    --json "$OUT/json/variant-noprefetch-$rate.json" >/dev/null 2>>"$OUT/stderr.log"
  "$BIN" simulate "${COMMON[@]}" --system aegaeon --trace "$ARTIFACT/workloads/synth-40-$rate-1.0-1.0.csv" --admission \
    --json "$OUT/json/variant-admission-$rate.json" >/dev/null 2>>"$OUT/stderr.log"
done

echo "run.sh: speed (40 models, 1 hour, 16 devices)" >&2
"$BIN" simulate "${COMMON[@]}" --system aegaeon --models 40 --rate 0.1 --duration 3600 --lengths "$LENGTHS" \
  --json "$OUT/json/speed.json" >/dev/null 2>>"$OUT/stderr.log"

echo "run.sh: plan" >&2
"$BIN" plan --profiles "$ARTIFACT/profiles.csv" --device H800 --max-devices 48 \
  --trace "$ARTIFACT/workloads/synth-40-0.5-1.0-1.0.csv" --json "$OUT/plan.json" >"$OUT/plan.txt" 2>>"$OUT/stderr.log"

python3 - "$OUT" <<'PY'
import json, os, sys, glob
out = sys.argv[1]
def load(name):
    return json.load(open(os.path.join(out, "json", name + ".json")))
systems = ["aegaeon", "dedicated", "request-level", "request-level-srtf", "static-mux"]
with open(os.path.join(out, "models.csv"), "w") as f:
    f.write("rate,models," + ",".join(f"{s}_qos,{s}_req" for s in systems) + "\n")
    for rate in ["0.1", "0.5"]:
        for m in [8, 16, 24, 32, 40, 48, 64, 80]:
            rows = {r["system"]: r for r in load(f"models-{m}-{rate}")}
            f.write(f"{rate},{m}," + ",".join(f"{rows[s]['attainment_qos']:.4f},{rows[s]['attainment_requests']:.4f}" for s in systems) + "\n")
rates = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.6, 0.7]
curves = {}
with open(os.path.join(out, "rate.csv"), "w") as f:
    f.write("slo_scale,rate," + ",".join(f"{s}_qos,{s}_req" for s in systems) + "\n")
    for scale in ["1.0", "0.5", "0.3"]:
        for rate in rates:
            rows = {r["system"]: r for r in load(f"rate-{rate}-{scale}")}
            for s in systems:
                curves.setdefault((scale, s), []).append((rate, rows[s]["attainment_qos"], rows[s]["attainment_requests"]))
            f.write(f"{scale},{rate}," + ",".join(f"{rows[s]['attainment_qos']:.4f},{rows[s]['attainment_requests']:.4f}" for s in systems) + "\n")
def goodput(points, idx):
    # Highest rate with attainment >= 0.9, interpolated between sweep points; 0 if never.
    best = 0.0
    for (r0, *a0), (r1, *a1) in zip(points, points[1:]):
        x0, x1 = a0[idx - 1], a1[idx - 1]
        if x0 >= 0.9:
            best = r0
            if x1 < 0.9:
                return r0 + (r1 - r0) * (x0 - 0.9) / (x0 - x1)
    if points and points[-1][idx] >= 0.9:
        best = points[-1][0]
    return best
with open(os.path.join(out, "goodput.csv"), "w") as f:
    f.write("slo_scale,metric,system,goodput_rps_per_model,aegaeon_ratio\n")
    for scale in ["1.0", "0.5", "0.3"]:
        for idx, metric in [(1, "qos"), (2, "requests")]:
            g = {s: goodput(curves[(scale, s)], idx) for s in systems}
            for s in systems:
                ratio = g["aegaeon"] / g[s] if g[s] > 0 else float("inf")
                f.write(f"{scale},{metric},{s},{g[s]:.4f},{ratio:.3f}\n")
gen_rates = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7]
gen = {}
with open(os.path.join(out, "rate_generated.csv"), "w") as f:
    f.write("rate," + ",".join(f"{s}_qos,{s}_req" for s in systems) + "\n")
    for rate in gen_rates:
        rows = {r["system"]: r for r in load(f"rategen-{rate}")}
        for s in systems:
            gen.setdefault(s, []).append((rate, rows[s]["attainment_qos"], rows[s]["attainment_requests"]))
        f.write(f"{rate}," + ",".join(f"{rows[s]['attainment_qos']:.4f},{rows[s]['attainment_requests']:.4f}" for s in systems) + "\n")
with open(os.path.join(out, "goodput.csv"), "a") as f:
    for idx, metric in [(1, "qos"), (2, "requests")]:
        g = {s: goodput(gen[s], idx) for s in systems}
        for s in systems:
            ratio = g["aegaeon"] / g[s] if g[s] > 0 else float("inf")
            f.write(f"generated-1.0,{metric},{s},{g[s]:.4f},{ratio:.3f}\n")
mp = {}
with open(os.path.join(out, "models_per_gpu.csv"), "w") as f:
    f.write("rate,system,max_models_at_90pct_qos,models_per_gpu\n")
    for rate in ["0.1", "0.5"]:
        for s in systems:
            best = 0
            for m in [8, 16, 24, 32, 40, 48, 64, 80]:
                r = {x["system"]: x for x in load(f"models-{m}-{rate}")}[s]
                if r["attainment_qos"] >= 0.9: best = m
                else: break
            f.write(f"{rate},{s},{best},{best/16:.2f}\n")
with open(os.path.join(out, "variants.csv"), "w") as f:
    f.write("rate,variant,qos,requests,rejected,switches_per_s\n")
    for rate in ["0.1", "0.2", "0.3", "0.5"]:
        base = {r["system"]: r for r in load(f"rate-{rate}-1.0")}["aegaeon"]
        for name, r in [("aegaeon", base), ("no-prefetch", load(f"variant-noprefetch-{rate}")[0]),
                        ("admission", load(f"variant-admission-{rate}")[0])]:
            f.write(f"{rate},{name},{r['attainment_qos']:.4f},{r['attainment_requests']:.4f},{r['rejected']},{r['switches_per_s']:.2f}\n")
sp = load("speed")[0]
with open(os.path.join(out, "speed.txt"), "w") as f:
    f.write(f"requests {sp['requests']} events {sp['events']} wall_s {sp['wall_s']:.3f} events_per_s {sp['events_per_s']:.0f}\n")
print(open(os.path.join(out, "goodput.csv")).read())
print(open(os.path.join(out, "models_per_gpu.csv")).read())
print(open(os.path.join(out, "variants.csv")).read())
print(open(os.path.join(out, "speed.txt")).read())
PY
cat "$OUT/plan.txt"

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set datafile separator ","
set terminal png size 900,600
set key bottom left
set ylabel "SLO attainment (qos)"
set yrange [0:1.05]
set output "$OUT/models-0.1.png"; set xlabel "models (0.1 req/s each)"
plot for [i=0:4] "< grep '^0.1,' $OUT/models.csv" using 2:(column(3+2*i)) with linespoints title word("aegaeon dedicated request-level request-level-srtf static-mux", i+1)
set output "$OUT/models-0.5.png"; set xlabel "models (0.5 req/s each)"
plot for [i=0:4] "< grep '^0.5,' $OUT/models.csv" using 2:(column(3+2*i)) with linespoints title word("aegaeon dedicated request-level request-level-srtf static-mux", i+1)
set output "$OUT/rate.png"; set xlabel "req/s per model (40 models)"
plot for [i=0:4] "< grep '^1.0,' $OUT/rate.csv" using 2:(column(3+2*i)) with linespoints title word("aegaeon dedicated request-level request-level-srtf static-mux", i+1)
GP
else
  echo "run.sh: gnuplot not installed; CSV only" >&2
fi
echo "run.sh: results in $OUT" >&2
