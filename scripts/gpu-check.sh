#!/usr/bin/env bash
# GPU check: build with burn-wgpu (Vulkan), run the smoke suite on the GPU, time a NATS-SSS
# block-0 epoch (nats-c10-paper: batch 256, 8 paths, 2 views) on the GPU, time a few steps of
# the same on the CPU, and print images/s and the speed-up. Sized for < 8 min on one H100
# (16 cores): ~4-5 min build, ~1 min JIT + epoch, ~1 min CPU steps.
#
# Usage: scripts/gpu-check.sh [out-dir]        (default reports/gpu-check)
# Env:   GPU_CHECK_CPU_STEPS (default 3), GPU_DEVICE (default wgpu)
#
# burn-cuda 0.22.1 downloads a prebuilt LLVM while it builds, which fails without internet;
# this script therefore uses burn-wgpu's Vulkan backend on the NVIDIA GPU. Machines without a
# Vulkan loader: put the Debian packages libvulkan1 (and libegl1 libglvnd0 ...) as .deb files
# in .gl/ (see docs/gpu.md); they are unpacked here before anything runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/gpu-check}
device=${GPU_DEVICE:-wgpu}
cpu_steps=${GPU_CHECK_CPU_STEPS:-3}
mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

if ! ldconfig -p | grep -q libvulkan.so.1; then
  if compgen -G ".gl/*.deb" >/dev/null; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  else
    echo "error: no Vulkan loader (libvulkan.so.1) and no .gl/*.deb to unpack; see docs/gpu.md" >&2
    exit 2
  fi
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then
  export VK_DRIVER_FILES=$nvidia_icd
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"

echo "== build (dev profile, features wgpu)"
t=$(date +%s)
cargo build -p xtask --features wgpu 2>&1 | tail -3
echo "build: $(( $(date +%s) - t )) s" | tee "$out/build.txt"
xtask=target/debug/xtask

echo "== smoke suite on $device"
t=$(date +%s)
"$xtask" reproduce --suite smoke --device "$device" --out "$out" --runs "$out/runs" --quiet
echo "smoke on $device: $(( $(date +%s) - t )) s" | tee "$out/smoke.txt"

echo "== NATS block-0 epoch on $device"
"$xtask" throughput --preset nats-c10-paper --device "$device" --epoch --json "$out/throughput-gpu.json"

echo "== NATS block-0 steps on cpu (same preset, $cpu_steps micro-batches)"
"$xtask" throughput --preset nats-c10-paper --device cpu --steps "$cpu_steps" --json "$out/throughput-cpu.json"

python3 - "$out" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
g = json.loads((d / "throughput-gpu.json").read_text())
c = json.loads((d / "throughput-cpu.json").read_text())
print(f"GPU ({g['device']}): {g['images_per_s']:.1f} images/s, first step {g['first_step_s']:.1f} s, "
      f"block-0 epoch {g['block0_epoch_images']} images in {g['wall_s']:.0f} s wall")
print(f"CPU: {c['images_per_s']:.2f} images/s (block-0 epoch estimate {c['block0_epoch_estimate_s']/3600:.1f} h)")
print(f"speed-up GPU/CPU: {g['images_per_s'] / c['images_per_s']:.1f}x")
PY
