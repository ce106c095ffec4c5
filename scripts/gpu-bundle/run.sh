#!/usr/bin/env bash
# The GPU run, from a bundle made by `cargo xtask gpu-bundle` (docs/gpu.md). Needs no Rust: the
# binary, the data, the Vulkan loader (.debs) and the PyTorch reference are in the bundle.
#
#   bash gpu-bundle/run.sh <out-dir>
#
# In one command, sized for well under 10 minutes on one H200 (TOTAL_S), printing as it goes:
#   1. GPU name and driver (nvidia-smi), the Vulkan adapter wgpu picked;
#   2. the smoke suite on wgpu;
#   3. the NATS-SSS block-0 training step at nats-c10-paper shapes (batch 256, 8 fair paths,
#      2 views) on wgpu: images/s after warm-up, first-step (compile) time, peak GPU memory;
#   4. the same step in PyTorch on CUDA, eager and torch.compile → ratio;
#   5. a time-boxed full-width NATS-SSS search (what is left of TOTAL_S, less a reserve for
#      rating) → τ-b, ρ over all 32,768 architectures, searched architecture, compute.
# It writes at most 8 files into <out-dir>: summary.md, log.txt, gpu.txt, throughput.json,
# torch.json, smoke-report.md, search-report.md, search-report.json. A failing phase does not
# stop the later ones; the exit status is non-zero when any phase failed.
#
# Environment (defaults are the GPU run; CI sets RUN_SHAPES=ci for lavapipe):
#   RUN_SHAPES       paper | ci (small widths, batch and data; still the full 32,768 rating)
#   DEVICE           wgpu (default) or wgpu:N
#   THROUGHPUT_DEVICE, SEARCH_DEVICE  the device of phases 3 and 5 (default: DEVICE). CI runs
#                    them on cpu: on lavapipe one ci-shape step of phase 3 takes ~100 s (first
#                    step 425 s), which CI's time cannot hold; the smoke phase keeps wgpu.
#   TOTAL_S          wall-clock target of the whole script in seconds (default 540)
#   SEARCH_MINUTES   training budget of the search (default: what TOTAL_S leaves, ≤ 4 min)
#   SEARCH_RESERVE_S time kept for the search's rating, search and correlation (default 150)
#   THROUGHPUT_STEPS timed micro-batches (default 12; the first includes compilation)
#   RATING_SUBSET    held-out images each candidate is rated on (default 1024)
#   TORCH_COMPILE    0 to skip the torch.compile run
#   SMOKE_TIMEOUT_S, THROUGHPUT_TIMEOUT_S  phase limits (150, 180; lavapipe's JIT needs more)
#   CUBECL_AUTOTUNE_LEVEL  minimal | balanced | extensive | full (CubeCL's autotune depth)
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 <out-dir>" >&2
  exit 2
fi
bundle=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
exec > >(tee -a "$out/log.txt") 2>&1

shapes=${RUN_SHAPES:-paper}
device=${DEVICE:-wgpu}
tp_device=${THROUGHPUT_DEVICE:-$device}
search_device=${SEARCH_DEVICE:-$device}
total_s=${TOTAL_S:-540}
reserve_s=${SEARCH_RESERVE_S:-150}
tp_steps=${THROUGHPUT_STEPS:-12}
rating_subset=${RATING_SUBSET:-1024}
work=$(mktemp -d "${TMPDIR:-/tmp}/bossnas-gpu.XXXXXX")
# The binary travels gzipped (the 64 MiB limit); unpack it next to the run's other scratch files.
xtask=$work/xtask
if ! gunzip -c "$bundle/bin/xtask.gz" >"$xtask" || ! chmod +x "$xtask"; then
  echo "cannot unpack $bundle/bin/xtask.gz into $work" >&2
  exit 2
fi
t0=$(date +%s)
failed=()

elapsed() { echo $(( $(date +%s) - t0 )); }
phase() { echo; echo "== [$(elapsed) s] $*"; }
fail() { echo "FAILED: $*"; failed+=("$1"); }

export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$work}
export BOSSNAS_SHARED_DATA=$bundle/data
truth=$bundle/data/nats-sss/nats_sss_cifar10.csv
export BOSSNAS_DATA=$work/data
export RUST_BACKTRACE=1

phase "bundle $bundle ($(head -2 "$bundle/MANIFEST.txt" 2>/dev/null | tail -1)), shapes $shapes, device $device"

# --- 1. GPU, driver, Vulkan loader ----------------------------------------------------------
# (grep without -q: with pipefail, -q's early exit would fail ldconfig with SIGPIPE.)
if ! ldconfig -p 2>/dev/null | grep 'libvulkan.so.1' >/dev/null; then
  if compgen -G "$bundle/debs/*.deb" >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
      echo "no libvulkan.so.1: unpacking the bundle's .debs into /"
      for f in "$bundle"/debs/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      echo "no libvulkan.so.1 and not root: unpacking the .debs into $work/vk"
      for f in "$bundle"/debs/*.deb; do dpkg -x "$f" "$work/vk"; done
      export LD_LIBRARY_PATH=$work/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
  else
    echo "warning: no libvulkan.so.1 and no .debs in the bundle; wgpu will find no adapter"
  fi
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then
  export VK_DRIVER_FILES=$nvidia_icd
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -srm), $(nproc) cores"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
      sed 's/^/gpu: /'
  else
    echo "gpu: no nvidia-smi"
  fi
  echo "VK_DRIVER_FILES: ${VK_DRIVER_FILES:-unset}"
  echo "CUBECL_AUTOTUNE_LEVEL: ${CUBECL_AUTOTUNE_LEVEL:-unset (CubeCL default)}"
  grep -E '^(commit|binary):' "$bundle/MANIFEST.txt" 2>/dev/null
} | tee "$out/gpu.txt"

# --- shapes ----------------------------------------------------------------------------------
# Block-0 throughput and the search use nats-c10-paper; CI shrinks them (layered configs).
tp_config=nats-c10-paper
search_config=$work/search.toml
torch_head=2048,4096,256
torch_batch=256
if [ "$shapes" = ci ]; then
  tp_config=$work/throughput.toml
  cat >"$tp_config" <<'EOF'
preset = "nats-c10-paper"
[space]
widths = [1, 2, 3, 4, 5, 6, 7, 8]
[train]
batch_size = 8
[heads]
projector_in = 16
projector_hidden = 32
projector_out = 8
predictor_hidden = 32
EOF
  cat >"$search_config" <<'EOF'
preset = "nats-c10-paper"
[space]
widths = [1, 2, 3, 4, 5, 6, 7, 8]
[data]
train_subset = 64
rating_subset = 16
num_workers = 0
[train]
batch_size = 8
accumulation_steps = 1
warmup_epochs = 0
[heads]
projector_in = 16
projector_hidden = 32
projector_out = 8
predictor_hidden = 32
[rating]
calibration_batch_size = 8
batch_size = 8
EOF
  torch_head=16,32,8
  torch_batch=8
else
  cat >"$search_config" <<EOF
# The official protocol, rated on $rating_subset held-out images per candidate to bound the
# rating time; training is time-boxed with --time-budget.
preset = "nats-c10-paper"
[data]
rating_subset = $rating_subset
EOF
fi

# CIFAR-10 is unpacked with tar beside the smoke suite and the step timings (the search needs it
# last); a complete tree is moved into place only when tar succeeds.
mkdir -p "$work/data" "$work/unpack"
(tar xzf "$bundle/data/cifar10-jpeg/cifar10-jpeg.tar.gz" -C "$work/unpack" &&
  mv "$work/unpack/cifar10_jpeg" "$work/data/cifar10_jpeg") &
untar=$!

# --- 2. smoke suite on wgpu --------------------------------------------------------------------
phase "smoke suite on $device"
if timeout "${SMOKE_TIMEOUT_S:-150}" "$xtask" reproduce --suite smoke --device "$device" --quiet --truth "$truth" \
  --out "$work/reports" --runs "$work/runs"; then
  cp "$work/reports/smoke/report.md" "$out/smoke-report.md"
else
  fail smoke "smoke suite on $device"
fi

# --- 3. block-0 step on wgpu -----------------------------------------------------------------
phase "NATS-SSS block-0 step on $tp_device ($tp_config, $tp_steps micro-batches)"
mem_log=$work/gpu-mem.csv
poll=""
if command -v nvidia-smi >/dev/null; then
  base_mb=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$mem_log" &
  poll=$!
fi
if ! timeout "${THROUGHPUT_TIMEOUT_S:-180}" "$xtask" throughput --preset "$tp_config" --device "$tp_device" \
  --steps "$tp_steps" --json "$work/throughput.json"; then
  fail throughput "block-0 step on $tp_device"
fi
if [ -n "$poll" ]; then
  kill "$poll" 2>/dev/null
  wait "$poll" 2>/dev/null
  peak_mb=$(sort -n "$mem_log" | tail -1)
  echo "GPU memory: peak ${peak_mb} MiB used, ${base_mb} MiB before the run"
fi
if [ -f "$work/throughput.json" ]; then
  python3 - "$work/throughput.json" "$out/throughput.json" "${peak_mb:-}" "${base_mb:-}" <<'PY'
import json, sys
src, dst, peak, base = sys.argv[1:5]
d = json.load(open(src))
d["peak_gpu_mb_nvidia_smi"] = float(peak) if peak else None
d["gpu_mb_before"] = float(base) if base else None
json.dump(d, open(dst, "w"), indent=2)
PY
fi

# --- 4. the same step in PyTorch on CUDA -------------------------------------------------------
phase "the same step in PyTorch (batch $torch_batch, heads $torch_head)"
torch_ok=0
if command -v python3 >/dev/null &&
  python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  torch_ok=1
else
  echo "skipped: no python3 with a CUDA-enabled torch here"
fi
torch_json=$work/torch.jsonl
: >"$torch_json"
if [ "$torch_ok" = 1 ]; then
  targs=(--row train_step_nats --device cuda --batch "$torch_batch" --head "$torch_head" --reps 20)
  if ! timeout 150 python3 "$bundle/torch_reference.py" "${targs[@]}" | tee -a "$torch_json"; then
    fail torch-eager "PyTorch eager step"
  fi
  if [ "${TORCH_COMPILE:-1}" != 0 ]; then
    if ! timeout 200 python3 "$bundle/torch_reference.py" "${targs[@]}" --compile |
      tee -a "$torch_json"; then
      echo "torch.compile did not finish (not counted as a failure)"
    fi
  fi
fi
python3 - "$torch_json" "$out/torch.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
out = {("compile" if r.get("compiled") else "eager"): r for r in rows}
json.dump(out, open(sys.argv[2], "w"), indent=2)
PY

# --- 5. time-boxed full-width search -----------------------------------------------------------
if ! wait "$untar"; then
  echo "unpacking CIFAR-10 with tar failed; the search will try itself"
fi
left=$(( total_s - $(elapsed) - reserve_s ))
minutes=${SEARCH_MINUTES:-$(python3 -c "print(f'{max(0.2, min(4.0, $left / 60)):.2f}')")}
phase "NATS-SSS search on $search_device, training time-boxed to $minutes min, then rating all blocks"
cat "$search_config"
search_timeout=$(python3 -c "print(int($minutes * 60 + $reserve_s + 60))")
if timeout "$search_timeout" "$xtask" reproduce --suite nats-c10-paper --device "$search_device" --truth "$truth" \
  --config "$search_config" --time-budget "$minutes" --no-download --quiet \
  --data "$work/data" --out "$work/reports" --runs "$work/runs"; then
  cp "$work/reports/nats-c10-paper/report.md" "$out/search-report.md"
  cp "$work/reports/nats-c10-paper/report.json" "$out/search-report.json"
else
  fail search "time-boxed search"
fi

# --- summary -------------------------------------------------------------------------------
phase "summary"
python3 - "$out" "$shapes" "$(elapsed)" <<'PY' | tee "$out/summary.md"
import json, pathlib, sys
out, shapes, wall = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.is_file() else None
print(f"# GPU bundle run ({shapes} shapes, {wall} s)\n")
print("```\n" + (out / "gpu.txt").read_text().strip() + "\n```\n")
tp, torch, rep = load("throughput.json"), load("torch.json") or {}, load("search-report.json")
if tp:
    print(f"- ours ({tp['device']}, adapter {tp.get('adapter')}, fusion {tp.get('fusion')}): "
          f"{tp['images_per_s']:.1f} images/s after warm-up (median step {tp['median_step_s']:.3f} s, "
          f"batch {tp['batch']}, {tp['paths_per_step']} paths × 2 views), first step "
          f"{tp['first_step_s']:.1f} s, peak GPU memory {tp.get('peak_gpu_mb_nvidia_smi')} MiB "
          f"(nvidia-smi, {tp.get('gpu_mb_before')} MiB before)")
for k in ("eager", "compile"):
    t = torch.get(k)
    if t:
        ratio = f", ours/PyTorch = {tp['images_per_s'] / t['images_per_s']:.3f}" if tp else ""
        print(f"- PyTorch {k} ({t['device']}): {t['images_per_s']:.1f} images/s (median "
              f"{t['median_ms']:.1f} ms), first step {t['first_step_s']:.1f} s, peak "
              f"{t.get('peak_gpu_mb', 0):.0f} MiB allocated{ratio}")
if not torch:
    print("- PyTorch: not run (no CUDA torch)")
if rep:
    c, n, r = rep["compute"], rep.get("nats") or {}, rep["result"]
    o = n.get("oriented") or {}
    print(f"- search: `{r['arch_string']}` (test acc. hp90 {n.get('chosen_test_accuracy_hp90')} %, "
          f"rank {n.get('chosen_accuracy_rank')} of {n.get('population')}); τ-b "
          f"{o.get('kendall_tau_b', float('nan')):.3f}, ρ {o.get('spearman_rho', float('nan')):.3f}, "
          f"r {o.get('pearson_r', float('nan')):.3f} (oriented) over all architectures")
    print(f"- search compute: {c['device']}, training budget {c.get('time_budget_min')} min, "
          f"{c['optimizer_steps']} optimizer steps, {c['images_seen']} images, train+rating "
          f"{c['train_s']:.0f} s, wall {c['wall_s']:.0f} s")
    for b in c.get("blocks", []):
        stop = " (time budget)" if b["stopped_by_time_budget"] else ""
        print(f"  - block {b['block']}: {b['steps']} of {b['planned_steps']} steps{stop}")
PY

rm -rf "$work"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed phases: ${failed[*]}"
  exit 1
fi
echo "done in $(elapsed) s; results in $out"
