#!/usr/bin/env bash
# Benchmark of `ackcheck check` against its floor (examples/floor.rs: serde_json parsing into
# typed structs + a set of ids), in the same run, on a generated 2,000,000-event history
# (about 950,000 messages, 16 producers, one group). Prints times, the ratio and peak memory.
# Needs hyperfine (apt-get install hyperfine). Usage: bash bench/checker.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/ackcheck-bench}
mkdir -p "$dir"
cargo build --release --bin ackcheck --example floor
bin=target/release/ackcheck
floor=target/release/examples/floor
history="$dir/history-2m.jsonl"
if [ ! -s "$history" ]; then
    "$bin" generate --seed 42 --messages 950000 --producers 16 --groups 1 --batch 10 \
        --loss 0.001 --written-twice 0.002 --redelivered 0.002 --indeterminate 0.002 \
        --out "$history" --truth "$dir/truth.json"
fi
echo "history: $(wc -l < "$history") lines, $(du -h "$history" | cut -f1)"
hyperfine --warmup 1 --runs 5 --export-json "$dir/hyperfine.json" \
    -n floor "$floor $history" \
    -n check "$bin check --json $history > /dev/null || true"
python3 - "$dir/hyperfine.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
f, c = r["floor"]["mean"], r["check"]["mean"]
print(f"floor {f:.3f} s, check {c:.3f} s, ratio check/floor = {c/f:.2f} (bar: <= 2.00)")
PY
messages=$("$floor" "$history" | awk '{print $3}')
for name in floor check; do
    if [ $name = floor ]; then cmd=("$floor" "$history"); else cmd=("$bin" check --json "$history"); fi
    rss=$( { /usr/bin/time -f '%M' "${cmd[@]}" > /dev/null; } 2>&1 | tail -1 )
    echo "$name: peak RSS ${rss} KiB = $(( rss * 1024 / messages )) bytes per distinct message ($messages messages)"
done
