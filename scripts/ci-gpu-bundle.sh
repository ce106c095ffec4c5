#!/usr/bin/env bash
# The GPU bundle end to end on Mesa's software Vulkan driver (lavapipe): `cargo xtask gpu-bundle`,
# then the bundle's run.sh with small shapes and a tiny time box, checking the files it must
# write. Called by .ci/run (docs/gpu.md). The smoke phase runs on wgpu; the timed step and the
# search run on cpu, because on lavapipe one small training step of the timed phase takes about
# 100 s (the first 425 s), far more than CI can give; every phase of the script still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# The same dev-profile dependencies as the parity test: only the xtask crate is compiled here.
# No .debs (no GPU machine to carry them to) and a CIFAR-10 subset keep it quick.
cargo xtask gpu-bundle --out "$out/gpu-bundle" --no-debs --cifar-per-class 50
RUN_SHAPES=ci THROUGHPUT_DEVICE=cpu SEARCH_DEVICE=cpu SEARCH_MINUTES=0.1 SEARCH_RESERVE_S=400 \
  THROUGHPUT_STEPS=3 TORCH_COMPILE=0 SMOKE_TIMEOUT_S=600 THROUGHPUT_TIMEOUT_S=300 \
  bash "$out/gpu-bundle/run.sh" "$out/gpu-run"
for f in summary.md throughput.json smoke-report.md search-report.json; do
  test -s "$out/gpu-run/$f" || { echo "the bundle's run.sh wrote no $f" >&2; exit 1; }
done
n=$(find "$out/gpu-run" -type f | wc -l)
[ "$n" -le 8 ] || { echo "the bundle's run.sh wrote $n files (at most 8 come back)" >&2; exit 1; }
echo "gpu bundle on lavapipe: ok ($out/gpu-run)"
