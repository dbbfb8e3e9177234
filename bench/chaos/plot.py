"""RSS and open files of every process of a chaos run over time, faults marked.

Usage: /usr/bin/python3 bench/chaos/plot.py RUN_DIR OUT.png
RUN_DIR is bench_chaos's --out (resources.csv and faults.log). A restarted process starts a new
line segment (its pid changes), so a restart never reads as growth.
"""
import csv
import os
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

run_dir, out = sys.argv[1], sys.argv[2]

# {process: {pid: [(minutes, rss MiB, open files)]}}
series = defaultdict(lambda: defaultdict(list))
with open(os.path.join(run_dir, "resources.csv")) as f:
    for row in csv.DictReader(f):
        if int(row["rss_kib"]) < 0:
            continue  # sampled between a kill and the restart
        series[row["process"]][row["pid"]].append(
            (float(row["seconds"]) / 60, int(row["rss_kib"]) / 1024, int(row["open_files"])))

faults = defaultdict(list)  # kind -> minutes
with open(os.path.join(run_dir, "faults.log")) as f:
    for line in f:
        m = re.match(r"\s*([0-9.]+) s\s+(SIGKILL|SIGSTOP|partition|controller|client)", line)
        if m:
            faults[m.group(2)].append(float(m.group(1)) / 60)

fig, (rss_ax, files_ax) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
colors = dict(zip(sorted(series), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
for process in sorted(series):
    for i, points in enumerate(series[process].values()):
        t, rss, files = zip(*points)
        label = process if i == 0 else None
        rss_ax.plot(t, rss, color=colors[process], label=label, linewidth=1)
        files_ax.plot(t, files, color=colors[process], label=label, linewidth=1)
for t in faults["controller"]:
    for ax in (rss_ax, files_ax):
        ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
kills = faults["SIGKILL"]
rss_ax.plot(kills, [rss_ax.get_ylim()[0]] * len(kills), "k|", markersize=8, label="worker SIGKILL")
rss_ax.set_ylabel("RSS (MiB)")
files_ax.set_ylabel("open files")
files_ax.set_xlabel("minutes (dotted: controller restarts)")
rss_ax.legend(loc="upper left", ncol=5, fontsize=8)
rss_ax.set_title("bench_chaos: every process's RSS and open files (a new segment per restart)")
fig.tight_layout()
fig.savefig(out, dpi=110)
print("wrote", out)
