#!/usr/bin/env bash
# Reproduces the NATS-Bench retraining sanity table of docs/retraining.md:
# unpacks CIFAR-10 (JPEG) into target/data if needed, builds the binary (dev profile, as every command) and retrains
# six NATS-SSS networks with the `nats-cifar-short` recipe on CPU, then prints the table with
# Kendall tau-b against cifar10_test_acc_hp90. Re-running continues unfinished runs.
#
# Usage: scripts/retrain-sanity.sh [shared data dir (default ../shared/data)] [extra args...]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${1:-../shared/data}"
shift || true
if [ ! -d target/data/cifar10_jpeg/train ]; then
  mkdir -p target/data
  tar xzf "$SHARED/cifar10-jpeg/cifar10-jpeg.tar.gz" -C target/data
fi
cargo build -p bossnas-cli
exec nice target/debug/bossnas retrain-sanity \
  --data target/data/cifar10_jpeg \
  --truth "$SHARED/nats-sss/nats_sss_cifar10.csv" \
  --recipe nats-cifar-short \
  --out target/retrain-sanity \
  --report target/retrain-sanity/table.md \
  --quiet "$@"
