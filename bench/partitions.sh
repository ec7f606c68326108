#!/usr/bin/env bash
# Runs every campaign in workloads/partitions/ with seeds 1-3 (60 s each, about 45 minutes in
# all on 2 cores) and prints the table of docs/partitions.md from the verdicts.
# Usage: bench/partitions.sh [OUT_DIR]   (needs root: nodes run in network namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/partitions}"
mkdir -p "$out"
cargo build --release -q
for campaign in workloads/partitions/*.toml; do
    name=$(basename "$campaign" .toml)
    for seed in 1 2 3; do
        dir="$out/$name-s$seed"
        [ -f "$dir/verdict.json" ] && continue
        ./target/release/ackcheck run "$campaign" --seed "$seed" --out "$dir" > "$dir.stdout" 2>&1 || true
    done
done
python3 bench/partitions-table.py "$out"
