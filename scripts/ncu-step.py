# Summarises an ncu --csv run: the kernels of the last replay of the step's CUDA graph (found as
# the period of the kernel sequence's tail), per kernel name and in order. On a GPU machine:
#   ncu --clock-control none --metrics gpu__time_duration.sum --csv --graph-profiling node \
#     build-gpu/alexnet_gpu_bench --precisions tf32 --batches 64 --iters 1 > /tmp/ncu.csv
#   python3 scripts/ncu-step.py /tmp/ncu.csv
# ncu flushes the caches before each kernel, so the sum exceeds the replayed step's time.
import csv, sys, collections
rows = []
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum": continue
    v = float(r["Metric Value"].replace(",", ""))
    unit = r["Metric Unit"]
    us = v / 1000 if unit.startswith("n") else v * 1000 if unit.startswith("m") else v
    rows.append((r["Kernel Name"], us, r.get("Grid Size", ""), r.get("Block Size", "")))
names = [r[0] for r in rows]
period = None
for k in range(5, len(names) // 3 + 1):
    if names[-k:] == names[-2 * k:-k] == names[-3 * k:-2 * k]:
        period = k; break
if not period:
    print("no period found; kernels:", len(rows)); period = min(len(rows), 300)
last = rows[-period:]
total = sum(r[1] for r in last)
print(f"kernels per step {period}, sum of kernel times {total:.1f} us")
agg = collections.defaultdict(lambda: [0.0, 0])
for i, (n, us, g, b) in enumerate(last):
    agg[n[:90]][0] += us; agg[n[:90]][1] += 1
print("--- by kernel name")
for n, (us, c) in sorted(agg.items(), key=lambda x: -x[1][0])[:40]:
    print(f"{us:9.1f} us {100*us/total:5.1f}% x{c:3d}  {n}")
print("--- in order")
for i, (n, us, g, b) in enumerate(last):
    print(f"{i:3d} {us:8.1f}  {g:>16} {b:>12}  {n[:100]}")
