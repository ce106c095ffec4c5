#!/usr/bin/env bash
# Profile E of one bench row (fifth pass): the time the step spends on the calling thread
# alone (serial.py), and the flat self time of the whole process.
#
# Usage (from the repository root; needs perf):
#   RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/fp \
#       cargo build --release -p xtask
#   docs/perf-profiles/profile_e.sh <row> [reps] >> docs/perf-profiles/<row>.txt
set -eu
row=$1
reps=${2:-30}
data=$(mktemp)
dir=$(dirname "$0")
echo
echo "== E: fifth pass (commit $(git rev-parse --short HEAD)), frame-pointer build, 2 threads, $reps reps =="
echo "# perf record -e cpu-clock -F 1999 -g target/fp/release/xtask bench --child $row --reps $reps"
line=$(perf record -q -e cpu-clock -F 1999 -g -o "$data" target/fp/release/xtask bench --child "$row" --reps "$reps" 2>/dev/null | tail -1)
echo "# step median under perf: $(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['median_ms'], 1))" "$line") ms"
perf script -i "$data" -F tid,ip,sym 2>/dev/null | python3 "$dir/serial.py" "bench::rows::|train_step::build::" "$((reps + 1))"
echo "# flat self time, top 8:"
perf report -i "$data" --no-children --sort symbol -g none 2>/dev/null | grep -v "^#" | grep -v "^$" \
    | sed -E 's/ +- +- +$//' | cut -c1-120 | head -8
rm -f "$data"
