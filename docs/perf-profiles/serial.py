#!/usr/bin/env python3
"""Time a bench step spends on the calling thread alone (profile E, fifth pass).

On these 2-vCPU machines rayon runs two workers; the thread that calls the step (main) only
runs serial work (Burn's element-wise ops on flex, output allocation, autodiff bookkeeping,
`gemm`'s serial packing) while both workers idle or wait. Every millisecond of it is wall
time with one core unused, so it is the first thing to remove after the GEMMs.

Usage (a frame-pointer build, see profile_e.sh):
    perf script -i row.data -F tid,ip,sym | python3 serial.py <step-frame> <steps>

Counts the main thread's samples whose stack contains <step-frame> (the step closure; several
patterns separated by `|`) and no
parameter initialisation, converts them to ms per step (sampling rate from --hz, default
1999), and lists them by leaf function and first project/Burn-op frame.
"""
import argparse
import sys
from collections import Counter

ap = argparse.ArgumentParser()
ap.add_argument("step_frame")
ap.add_argument("steps", type=int)
ap.add_argument("--hz", type=float, default=1999.0)
ap.add_argument("--top", type=int, default=12)
args = ap.parse_args()

samples, cur = [], None
for line in sys.stdin:
    if not line.strip():
        if cur:
            samples.append(cur)
        cur = None
        continue
    if not line.startswith((" ", "\t")):
        cur = (line.split()[0], [])
        continue
    if cur is not None:
        parts = line.split(None, 1)
        cur[1].append(parts[1].strip() if len(parts) > 1 else "")
if cur:
    samples.append(cur)

tids = Counter(tid for tid, _ in samples)
main = min(tids, key=int)  # the first thread of the process
init = ("random", "initialize")
step = [
    st
    for tid, st in samples
    if tid == main
    and any(p in f for f in st for p in args.step_frame.split("|"))
    and not any(k in f.lower() for f in st for k in init)
]
per_ms = 1000.0 / args.hz / args.steps
print(f"#   threads (samples): {dict(tids)}")
print(f"#   main thread alone, in the step: {len(step) * per_ms:.1f} ms per step")
keys = ("bossnas_blocks::", "burn_flex::ops::", "copy_2d", "FlexTensor::empty")
by = Counter()
for st in step:
    op = next((f for f in st if any(k in f for k in keys)), "other")
    by[(st[0][:48], op[:72])] += 1
for (leaf, op), n in by.most_common(args.top):
    print(f"#   {n * per_ms:6.2f} ms  {leaf:48s} in {op}")
