#!/usr/bin/env bash
# Benchmark of `ackcheck check` against its floor (examples/floor.rs: serde_json parsing into
# typed structs + a set of ids, one thread), in the same run, on a generated 2,000,000-event
# history (about 950,000 messages, 16 producers, one group). The two programs alternate, round
# by round, so that load from other work on the machine falls on both alike; each run's wall
# time, user CPU and peak RSS come from /usr/bin/time. Prints every round, the mean ratio and
# bytes per distinct message. Usage: [LOG_POSITIONS=1] bash bench/checker.sh [DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/ackcheck-bench}
rounds=${2:-7}
mkdir -p "$dir"
# The checker uses no broker client: a build without the broker features measures the same code
# and builds in a fraction of the time.
cargo build --release --no-default-features --bin ackcheck --example floor
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/ackcheck
floor=$target/release/examples/floor
# LOG_POSITIONS=1: the same history with "positions":"log" in its header, so that the log checks
# (inconsistent positions, loss by position, skips, reordered sends) run too.
log_flag=()
history="$dir/history-2m.jsonl"
if [ "${LOG_POSITIONS:-0}" = 1 ]; then
    log_flag=(--log-positions)
    history="$dir/history-2m-log.jsonl"
fi
if [ ! -s "$history" ]; then
    "$bin" generate --seed 42 --messages 950000 --producers 16 --groups 1 --batch 10 \
        --loss 0.001 --written-twice 0.002 --redelivered 0.002 --indeterminate 0.002 \
        "${log_flag[@]}" --out "$history" --truth "$dir/truth.json"
fi
echo "history: $(wc -l < "$history") lines, $(du -h "$history" | cut -f1)"
messages=$("$floor" "$history" | awk '{print $3}')
# Warm the page cache for both.
"$bin" check --json "$history" > "$dir/verdict.json" || true
results="$dir/rounds.tsv"
: > "$results"
for r in $(seq 1 "$rounds"); do
    for name in floor check; do
        if [ $name = floor ]; then cmd=("$floor" "$history"); else cmd=("$bin" check --json "$history"); fi
        stats=$( { /usr/bin/time -f '%e %U %M' "${cmd[@]}" > /dev/null || true; } 2>&1 | tail -1 )
        echo "$r $name $stats $(cut -d' ' -f1 /proc/loadavg)" >> "$results"
    done
done
python3 - "$results" "$messages" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
messages = int(sys.argv[2])
by = {"floor": [], "check": []}
print("round  floor wall/user/RSS KiB      check wall/user/RSS KiB      ratio  load")
for r in sorted({int(x[0]) for x in rows}):
    f = next(x for x in rows if int(x[0]) == r and x[1] == "floor")
    c = next(x for x in rows if int(x[0]) == r and x[1] == "check")
    by["floor"].append(f); by["check"].append(c)
    print(f"{r:>5}  {f[2]:>6} s {f[3]:>6} s {f[4]:>8}   {c[2]:>6} s {c[3]:>6} s {c[4]:>8}   {float(c[2])/float(f[2]):.2f}  {c[5]}")
mean = lambda xs, i: statistics.mean(float(x[i]) for x in xs)
fw, cw = mean(by["floor"], 2), mean(by["check"], 2)
ratios = [float(c[2]) / float(f[2]) for f, c in zip(by["floor"], by["check"])]
print(f"mean wall: floor {fw:.3f} s, check {cw:.3f} s; ratio of means {cw/fw:.2f}, median round ratio {statistics.median(ratios):.2f} (bar: <= 0.50)")
print(f"mean user CPU: floor {mean(by['floor'], 3):.3f} s, check {mean(by['check'], 3):.3f} s")
for name in ("floor", "check"):
    rss = max(int(x[4]) for x in by[name])
    print(f"{name}: peak RSS {rss} KiB = {rss * 1024 // messages} bytes per distinct message ({messages} messages; bar for check: <= 200)")
PY
