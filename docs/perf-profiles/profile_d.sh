#!/usr/bin/env bash
# Profile D of one bench row (fourth pass): our step with frame-pointer call graphs (2 rayon
# threads, the real kernels), inclusive shares of the main operations and flat self time, and
# PyTorch's own per-operator profile of the same row for comparison.
#
# Usage (from the repository root; needs perf, and python3 with torch for the second part):
#   RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/fp \
#       cargo build --release -p xtask
#   docs/perf-profiles/profile_d.sh <row> [reps] >> docs/perf-profiles/<row>.txt
set -eu
row=$1
reps=${2:-40}
data=$(mktemp)
echo
echo "== D: fourth pass (fused batch norm / SiLU / softmax, commit $(git rev-parse --short HEAD)), frame-pointer build, 2 threads, $reps reps =="
echo "# perf record -e cpu-clock -F 1999 -g target/fp/release/xtask bench --child $row --reps $reps"
line=$(perf record -q -e cpu-clock -F 1999 -g -o "$data" target/fp/release/xtask bench --child "$row" --reps "$reps" 2>/dev/null | tail -1)
echo "# step median under perf: $(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['median_ms'], 1))" "$line") ms"
echo "# inclusive shares (children included) of selected frames:"
perf report -i "$data" --children --sort symbol -g none 2>/dev/null \
    | grep -E "gemm_basic\b|gemm_basic_generic|matmul_batched_gemm|matmul_gemm\b|cpu::conv::(forward|weight_grad|input_grad|depthwise)|nodes::norm::batch_norm$|nodes::act::(softmax|silu)$|AutodiffServer::execute_steps|__memset|__memmove|copy_2d_tiled|FlexTensor::empty|exc_page_fault|TensorData::random" \
    | sed -E 's/ +- +- +$//; s/^ +/    /' | cut -c1-140 | head -20
echo "# flat self time, top 12:"
perf report -i "$data" --no-children --sort symbol -g none 2>/dev/null | grep -v "^#" | grep -v "^$" \
    | sed -E 's/ +- +- +$//' | cut -c1-140 | head -12
rm -f "$data"
if python3 -c "import torch" 2>/dev/null; then
    echo "# PyTorch (torch.profiler, 2 threads, 5 steps after 3 warm-up; self CPU time per operator):"
    (cd benches && python3 - "$row" <<'PY'
import sys, torch
import torch_reference as tr
from torch.profiler import profile, ProfilerActivity
torch.set_num_threads(2)
step = tr.ROWS[sys.argv[1]]()
for _ in range(3):
    step()
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(5):
        step()
rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]
total = sum(e.self_cpu_time_total for e in prof.key_averages())
print(f"#   per step: {total / 5 / 1000:.1f} ms")
for e in rows:
    print(f"#   {e.key:40s} {e.self_cpu_time_total / 5 / 1000:8.1f} ms/step")
PY
    ) 2>/dev/null
fi
