#!/usr/bin/env bash
# The newcomer's first hour, measured (issue 20, README "One build"): clones this repository's
# HEAD into <workdir>/repo with an empty target folder and no ../shared beside it, puts the data
# a user would have into <workdir>/data ($BOSSNAS_DATA), then times
#   1. `cargo xtask reproduce --suite nats-c10-cpu` (the first build and the main job),
#   2. `cargo test --workspace --no-run` after it (lists what it compiles: Burn must not be among
#      the crates the first command built),
#   3. `bossnas nats correlate` and `bossnas train` started from `/`.
# Usage: scripts/cold-start.sh <workdir> [<shared data dir>, default ../shared/data]
# The data dir is read in the layout of shared/data/README.md (nats-sss/, bossnas-reference/,
# cifar10-jpeg/cifar10-jpeg.tar.gz). Run it on an idle machine: every figure is wall time.
set -euo pipefail
repo_src=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: scripts/cold-start.sh <workdir> [<shared data dir>]}
shared=${2:-$repo_src/../shared/data}
[ -e "$work" ] && { echo "cold-start: $work exists; give a new folder" >&2; exit 2; }
for f in nats-sss/nats_sss_cifar10.csv bossnas-reference cifar10-jpeg/cifar10-jpeg.tar.gz; do
  [ -e "$shared/$f" ] || { echo "cold-start: $shared/$f is missing (shared/data layout)" >&2; exit 2; }
done
mkdir -p "$work/data/nats-sss" "$work/data/bossnas-reference"
work=$(cd "$work" && pwd)
git clone -q "$repo_src" "$work/repo"
cp "$shared/nats-sss/nats_sss_cifar10.csv" "$work/data/nats-sss/"
cp "$shared"/bossnas-reference/*.csv "$work/data/bossnas-reference/"
tar xzf "$shared/cifar10-jpeg/cifar10-jpeg.tar.gz" -C "$work/data"
export BOSSNAS_DATA=$work/data
stamp() { while IFS= read -r l; do echo "$(date +%H:%M:%S) $l"; done; }
cd "$work/repo"
echo "== commit $(git rev-parse --short HEAD); ../shared beside the clone: $(test -e ../shared && echo yes || echo no); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== 1. cargo xtask reproduce --suite nats-c10-cpu, from $(date +%H:%M:%S)"
/usr/bin/time -f "reproduce: %e s wall, %U s user, %S s sys" \
  cargo xtask reproduce --suite nats-c10-cpu 2>&1 | stamp | tee "$work/reproduce.log" \
  | grep -v -E '^\S+ +Compiling|step [0-9]+/'
echo "crates compiled: $(grep -c ' Compiling ' "$work/reproduce.log")"
echo "== 2. cargo test --workspace --no-run"
/usr/bin/time -f "test --no-run: %e s wall" cargo test --workspace --no-run 2>&1 | stamp >"$work/test-norun.log"
tail -1 "$work/test-norun.log"
echo "crates compiled: $(grep -c ' Compiling ' "$work/test-norun.log"): $(grep ' Compiling ' "$work/test-norun.log" | awk '{print $3}' | tr '\n' ' ')"
echo "== 3. from /"
cd /
"$work/repo/target/debug/bossnas" nats correlate --scores official --out "$work/from-root-correlate" | tail -1
"$work/repo/target/debug/bossnas" train --config nats-c10-cpu --max-steps 2 --out "$work/from-root-runs" --quiet
echo "train from /: $(ls "$work/from-root-runs")"
echo "== done $(date +%H:%M:%S); the report: $work/repo/reports/nats-c10-cpu/report.md"
