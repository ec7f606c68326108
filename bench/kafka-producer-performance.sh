#!/usr/bin/env bash
# Throughput of the Kafka queue workload (`ackcheck run workloads/kafka-bench.toml`: acks=all,
# 100-byte messages, 2 producers, no rate limit, no faults, every send and delivery recorded)
# against Kafka's own org.apache.kafka.tools.ProducerPerformance with acks=all and 100-byte
# records, the same node through the same Toxiproxy listener (127.0.0.1:19000). Interleaved
# rounds in one session: ProducerPerformance, ackcheck with the history on disk, ackcheck with
# the history discarded. Prints one line per measurement and the mean ratios.
# Usage: bash bench/kafka-producer-performance.sh [DIR] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/ackcheck-bench/kafka}
rounds=${2:-5}
seconds=${3:-15}
mkdir -p "$dir"
cargo build --release --bin ackcheck
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/ackcheck
home=${ACKCHECK_HOME:-$HOME/.cache/ackcheck}

"$bin" cluster up kafka > /dev/null
trap '"$bin" cluster down kafka > /dev/null' EXIT
kafka=$(ls -d "$home"/install/kafka-[0-9]* | head -1)

# ProducerPerformance's records: sized so that a round lasts about as long as ackcheck's.
records=$((seconds * 400000))
pp=() ; disk=() ; null=()
for round in $(seq "$rounds"); do
    java -Xmx512m -cp "$kafka/lib/*" -Dlog4j2.configurationFile="$kafka/log4j2.xml" \
        org.apache.kafka.tools.ProducerPerformance --topic "bench-pp-$round-$$" --num-records "$records" \
        --record-size 100 --throughput -1 --producer-props bootstrap.servers=127.0.0.1:19000 acks=all \
        > "$dir/pp-$round.log" 2>&1
    rate=$(grep -E 'records sent' "$dir/pp-$round.log" | tail -1 | sed -E 's/.*records sent, ([0-9.]+) records\/sec.*/\1/')
    pp+=("$rate")
    echo "round $round ProducerPerformance: $rate msg/s (load $(cut -d' ' -f1-3 /proc/loadavg))"
    for sink in disk null; do
        out="$dir/ackcheck-$sink-$round"
        rm -rf "$out"
        extra=()
        [ "$sink" = null ] && extra=(--discard-history)
        "$bin" run workloads/kafka-bench.toml --duration "${seconds}s" --keep-cluster --out "$out" "${extra[@]}" \
            > "$out.stdout" 2>&1 || true
        line=$(grep "acknowledged sends/s" "$out.stdout")
        rate=$(echo "$line" | sed -E 's/.*; ([0-9.]+) acknowledged sends\/s.*/\1/')
        if [ "$sink" = disk ]; then disk+=("$rate"); else null+=("$rate"); fi
        echo "round $round ackcheck history $sink: $rate msg/s (load $(cut -d' ' -f1-3 /proc/loadavg))"
    done
done
python3 - "${pp[*]}" "${disk[*]}" "${null[*]}" <<'PY'
import sys
pp, disk, null = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mean = lambda xs: sum(xs) / len(xs)
print(f"mean ProducerPerformance {mean(pp):,.0f} msg/s; ackcheck on disk {mean(disk):,.0f} "
      f"({mean(disk)/mean(pp):.2f}x), discarded {mean(null):,.0f} ({mean(null)/mean(pp):.2f}x); "
      f"pairwise disk/PP {', '.join(f'{d/p:.2f}' for d, p in zip(disk, pp))}")
PY
