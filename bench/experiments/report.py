"""Tables and plots of bench/experiments/run.sh from the simulator's JSON reports.

Usage: report.py OUT "MODELS_AT_0.1" "MODELS_AT_0.5" "RATES" (run.sh passes them).
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT, M01, M05, RATES = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
SYSTEMS = ["aegaeon", "aegaeon-paper", "request-level", "static-mux"]


def load(name):
    """{system: row} of run NAME (the baselines' file and the paper variant's). A run repeated
    over seeds (NAME-sSEED) gives the mean of each attainment."""
    seeds = sorted(glob.glob(os.path.join(OUT, "json", name + "-s*.json")))
    seeds = [p for p in seeds if not p.endswith(("-paper.json", "-noadm.json"))]
    if seeds:
        runs = [load(os.path.basename(p)[: -len(".json")]) for p in seeds]
        mean = {}
        for s in runs[0]:
            row = dict(runs[0][s])
            for key in ("attainment_qos", "attainment_requests"):
                row[key] = sum(r[s][key] for r in runs) / len(runs)
            mean[s] = row
        return mean
    rows = {r["system"]: r for r in json.load(open(os.path.join(OUT, "json", name + ".json")))}
    # Each baseline at its best: with or without admission, whichever attains more (per metric).
    noadm = os.path.join(OUT, "json", name + "-noadm.json")
    if os.path.exists(noadm):
        for r in json.load(open(noadm)):
            row = dict(rows[r["system"]])
            for key in ("attainment_qos", "attainment_requests"):
                row[key] = max(row[key], r[key])
            rows[r["system"]] = row
    paper = os.path.join(OUT, "json", name + "-paper.json")
    if os.path.exists(paper):
        rows["aegaeon-paper"] = json.load(open(paper))[0]
    return rows


def att(row, metric):
    return row["attainment_qos"] if metric == "qos" else row["attainment_requests"]


def held(models, rate, metric):
    """Most models with attainment >= 90% before the first point that falls below."""
    best = {}
    for s in SYSTEMS:
        best[s] = 0
        for m in models:
            if att(load(f"models-{m}-{rate}")[s], metric) >= 0.9:
                best[s] = int(m)
            else:
                break
    return best


with open(os.path.join(OUT, "models.csv"), "w") as f:
    f.write("rate,models," + ",".join(f"{s}_qos,{s}_req" for s in SYSTEMS) + "\n")
    for rate, models in (("0.1", M01), ("0.5", M05)):
        for m in models:
            rows = load(f"models-{m}-{rate}")
            f.write(f"{rate},{m}," + ",".join(f"{att(rows[s], 'qos'):.4f},{att(rows[s], 'req'):.4f}" for s in SYSTEMS) + "\n")

with open(os.path.join(OUT, "held.csv"), "w") as f:
    f.write("rate,metric," + ",".join(SYSTEMS) + ",aegaeon_vs_best_baseline\n")
    for rate, models in (("0.1", M01), ("0.5", M05)):
        for metric in ("qos", "req"):
            h = held(models, rate, metric)
            base = max(h["request-level"], h["static-mux"], h["aegaeon-paper"])
            ratio = h["aegaeon"] / base if base else float("inf")
            f.write(f"{rate},{metric}," + ",".join(str(h[s]) for s in SYSTEMS) + f",{ratio:.2f}\n")

with open(os.path.join(OUT, "rate.csv"), "w") as f:
    f.write("slo_scale,rate," + ",".join(f"{s}_qos,{s}_req" for s in SYSTEMS) + "\n")
    for scale in ("1.0", "0.5", "0.3"):
        for rate in RATES:
            rows = load(f"rate-{rate}-{scale}")
            f.write(f"{scale},{rate}," + ",".join(f"{att(rows[s], 'qos'):.4f},{att(rows[s], 'req'):.4f}" for s in SYSTEMS) + "\n")

with open(os.path.join(OUT, "variants.csv"), "w") as f:
    f.write("variant,rate," + ",".join(f"{s}_qos,{s}_req" for s in SYSTEMS) + "\n")
    for path in sorted(glob.glob(os.path.join(OUT, "json", "variant-*.json"))):
        name = os.path.basename(path)[:-5]
        if name.endswith(("-paper", "-noadm")):
            continue
        variant, rate = name[len("variant-"):].rsplit("-", 1)
        rows = load(name)
        f.write(f"{variant},{rate}," + ",".join(f"{att(rows[s], 'qos'):.4f},{att(rows[s], 'req'):.4f}" for s in SYSTEMS) + "\n")

with open(os.path.join(OUT, "ablation.csv"), "w") as f:
    f.write("models,rate,variant,prefill_devices,qos,req,switches_per_s\n")
    runs = {}  # (models, rate, variant, prefill devices) -> rows of each seed
    for path in sorted(glob.glob(os.path.join(OUT, "json", "ablation-*.json"))):
        _, m, rate, rest = os.path.basename(path)[:-5].split("-", 3)
        variant, p, _seed = rest.rsplit("-", 2)
        runs.setdefault((m, rate, variant, p), []).append(json.load(open(path))[0])
    for (m, rate, variant, p), rows in sorted(runs.items()):
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("attainment_qos", "attainment_requests", "switches_per_s")}
        f.write(f"{m},{rate},{variant},{p},{mean['attainment_qos']:.4f},{mean['attainment_requests']:.4f},"
                f"{mean['switches_per_s']:.2f}\n")


def plot(path, xlabel, series, title):
    plt.figure(figsize=(7, 4.5))
    for label, xs, ys, style in series:
        plt.plot(xs, ys, style, label=label, color=COLOR[label.split(" ")[0]])
    plt.axhline(0.9, color="grey", lw=0.8, ls=":")
    plt.ylim(0, 1.05)
    plt.xlabel(xlabel)
    plt.ylabel("SLO attainment")
    plt.title(title)
    plt.legend(fontsize=8)
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(os.path.join(OUT, path), dpi=110)
    plt.close()


COLOR = {"aegaeon": "tab:blue", "aegaeon-paper": "tab:green", "request-level": "tab:orange", "static-mux": "tab:red"}
STYLE = {"aegaeon": "o-", "aegaeon-paper": "x--", "request-level": "s-", "static-mux": "^-"}
for rate, models in (("0.1", M01), ("0.5", M05)):
    series = []
    for s in SYSTEMS:
        for metric, suffix in (("qos", ""), ("req", " (TTFT+TPOT)")):
            ys = [att(load(f"models-{m}-{rate}")[s], metric) for m in models]
            style = STYLE[s] if metric == "qos" else STYLE[s].rstrip("-") + ":"
            series.append((s + suffix, [int(m) for m in models], ys, style))
    plot(f"models-{rate}.png", f"models ({rate} req/s each), 16 x H800", series,
         f"Attainment vs number of models at {rate} req/s")
for scale in ("1.0", "0.5", "0.3"):
    series = [(s, [float(r) for r in RATES], [att(load(f"rate-{r}-{scale}")[s], "qos") for r in RATES], STYLE[s]) for s in SYSTEMS]
    plot(f"rate-slo{scale}.png", "req/s per model (40 models)", series, f"Attainment vs rate, SLO x{scale}")

plan = json.load(open(os.path.join(OUT, "plan.json")))
rows = plan if isinstance(plan, list) else plan.get("systems", [])
names, devices = [], []
for r in rows:
    if isinstance(r, dict) and r.get("devices"):
        names.append(r.get("system"))
        devices.append(r["devices"])
if names:
    plt.figure(figsize=(6, 3.5))
    plt.bar(names, devices)
    plt.ylabel("devices (H20) for 90% qos")
    plt.title("aegaeon plan: long-tail mix, 100 models")
    plt.tight_layout()
    plt.savefig(os.path.join(OUT, "plan.png"), dpi=110)
    plt.close()

for name in ("held.csv", "ablation.csv"):
    print(open(os.path.join(OUT, name)).read())
print(open(os.path.join(OUT, "plan.txt")).read())
