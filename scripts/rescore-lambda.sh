#!/usr/bin/env bash
# Re-scores the sweep's trained runs with other λ per block, without training anything: for each
# run directory under runs/sweeps/<sweep>/ that holds its block rankings, copy the rankings,
# run `bossnas search --lambda L` on the copy (Σ λ_k (L_k + 4)) and correlate its scores of all
# 32,768 NATS-SSS architectures with NATS-Bench. Prints one line per run and λ, then one line
# per variant with two or more seeds and λ: the seed ensemble, i.e. the mean of the seeds'
# scores (a search that trains k supernets and averages their potentials, at k times the cost).
#
#   scripts/rescore-lambda.sh [sweep] [λ list …]      # default: search-quality 1,1,1 0,1,1
#
# Needs the `bossnas` binary (cargo build -p bossnas-cli) and the NATS ground truth in the data
# directory ($BOSSNAS_DATA, else ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=${1:-search-quality}
shift || true
lambdas=("$@")
[ ${#lambdas[@]} -gt 0 ] || lambdas=(1,1,1 0,1,1)
bin=${BOSSNAS_BIN:-target/debug/bossnas}
data=${BOSSNAS_DATA:-../shared/data}
[ -x "$bin" ] || { echo "no $bin: build it with cargo build -p bossnas-cli" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-28s %-7s %s\n' run lambda tau_b
for run in runs/sweeps/"$sweep"/*/; do
  name=$(basename "$run")
  [ -f "$run/rating/path_rank_0.csv" ] && [ -f "$run/search/nats_scores.csv" ] || continue
  for lam in "${lambdas[@]}"; do
    copy="$work/$name-$lam"
    mkdir -p "$copy"
    cp -r "$run/rating" "$run/config.resolved.toml" "$copy/"
    "$bin" search --run "$copy" --lambda "$lam" >"$copy.log" 2>&1 ||
      { echo "$name: bossnas search --lambda $lam failed:" >&2; tail -3 "$copy.log" >&2; exit 1; }
    tau=$("$bin" nats correlate --scores "$copy/search/nats_scores.csv" --data "$data" \
      --bootstrap 0 --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["score"]["oriented"]["kendall_tau_b"])')
    printf '%-28s %-7s %.3f\n' "$name" "$lam" "$tau"
  done
done
# Seed ensembles: <variant>-s<seed> copies grouped by variant and λ.
for lam in "${lambdas[@]}"; do
  for variant in $(ls "$work" | grep -E -- "-s[0-9]+-$lam\$" | sed -E "s/-s[0-9]+-$lam\$//" | sort | uniq -d); do
    seeds=("$work/$variant"-s*-"$lam")
    python3 - "$work/$variant-ensemble-$lam.csv" "${seeds[@]}" <<'PY'
import csv, sys
out, runs = sys.argv[1], sys.argv[2:]
tables = [{r["arch"]: float(r["score"]) for r in csv.DictReader(open(f"{d}/search/nats_scores.csv"))} for d in runs]
with open(out, "w") as f:
    f.write("arch,score\n")
    for arch in tables[0]:
        f.write(f"{arch},{sum(t[arch] for t in tables) / len(tables)}\n")
PY
    tau=$("$bin" nats correlate --scores "$work/$variant-ensemble-$lam.csv" --data "$data" \
      --bootstrap 0 --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["score"]["oriented"]["kendall_tau_b"])')
    printf '%-28s %-7s %.3f  (mean of %d seeds)\n' "$variant" "$lam" "$tau" "${#seeds[@]}"
  done
done
