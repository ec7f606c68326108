#!/usr/bin/env bash
# Throughput of the NATS JetStream at-least-once queue workload (`ackcheck run`: file storage,
# one replica, JetStream publish waiting for each PubAck, 100-byte messages, durable pull
# consumer with explicit acks, history recorded to disk) against NATS's own benchmark,
# `nats bench` (natscli, built with `go install` from the Go module proxy) with the same
# settings: 2 publishing clients with 16 asynchronous publishes outstanding each (ackcheck's 16
# sends in flight), 3 clients fetching batches of 20 with explicit acks from a durable consumer
# at the same time, a file-storage stream with one replica, the same node through the same
# Toxiproxy port. The two alternate, ROUNDS times each, in one session. Needs go.
# Usage: bash bench/nats-bench.sh [DIR] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/ackcheck-bench/nats}
rounds=${2:-3}
seconds=${3:-30}
mkdir -p "$dir"
cargo build --release --bin ackcheck
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/ackcheck
home=${ACKCHECK_HOME:-$HOME/.cache/ackcheck}

# 0.4.0: natscli 0.5.0 writes stream settings (allow_batched) that nats-server 2.12 refuses.
natscli_version=0.4.0
nats=$home/install/natscli-$natscli_version/nats
if [ ! -x "$nats" ]; then
    GOBIN=$home/install/natscli-$natscli_version go install "github.com/nats-io/natscli/nats@v$natscli_version"
fi

source bench/queue-bench.sh
queue_bench_campaign nats "$dir/nats-bench.toml"

"$bin" cluster up nats > /dev/null
trap '"$bin" cluster down nats > /dev/null' EXIT
# Node 0's client port in the port plan (its Toxiproxy proxy), the one ackcheck's clients use.
server="nats://127.0.0.1:19400"

for round in $(seq "$rounds"); do
    ackcheck_round "$bin" "$dir/nats-bench.toml" "$seconds" "$dir/ackcheck-$round" "$round"
    # nats bench publishes a count, not for a time: as many as ackcheck acknowledged in this
    # round, so that both run about as long.
    count=$(sed -n 's/.* acknowledged (\([0-9]*\)\/s).*/\1/p' <<<"$line")
    count=$(( ${count:-1000} * seconds ))
    stream="natsbench$round$$"
    subject="natsbench.$round.$$"
    # The stream first (pub creates it), then the fetching clients beside the publishers.
    "$nats" -s "$server" bench js pub async "$subject" --stream "$stream" --create --storage file \
        --replicas 1 --size 100 --msgs 1 --no-progress > /dev/null 2>&1
    "$nats" -s "$server" bench js fetch --stream "$stream" --clients 3 --batch 20 --acks explicit \
        --msgs 1000000000 --no-progress > "$dir/nats-fetch-$round.log" 2>&1 &
    fetch=$!
    "$nats" -s "$server" bench js pub async "$subject" --stream "$stream" --clients 2 --batch 16 \
        --size 100 --msgs "$count" --no-progress > "$dir/nats-pub-$round.log" 2>&1
    kill "$fetch" 2>/dev/null || true
    wait "$fetch" 2>/dev/null || true
    echo "round $round nats bench: $(grep -E 'aggregated stats' "$dir/nats-pub-$round.log" | head -1 | sed 's/^ *//') ($count messages; load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$nats" -s "$server" stream rm -f "$stream" > /dev/null 2>&1 || true
done
