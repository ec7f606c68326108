# What the broker-vs-own-tool benchmarks share (sourced by bench/rabbitmq-perftest.sh and
# bench/nats-bench.sh): the at-least-once queue campaign they run, and one ackcheck round.

# queue_bench_campaign BROKER FILE: one node, at-least-once, 2 producers with 16 sends in flight
# and no rate limit, 3 consumers reading batches of up to 20, 100-byte messages, no faults.
queue_bench_campaign() {
    cat > "$2" <<EOF
broker = "$1"
nodes = 1
mode = "at-least-once"
seed = 1

[workload]
kind = "queue"
producers = 2
consumers = 3
rate = 0
message_size = 100
in_flight = 16
poll_batch = 20
EOF
}

# ackcheck_round BIN CAMPAIGN SECONDS OUT ROUND: one run on the cluster that is up (history to
# disk in OUT); prints its run-phase line and sets `line` to it.
ackcheck_round() {
    local bin=$1 campaign=$2 seconds=$3 out=$4 round=$5
    rm -rf "$out"
    "$bin" run "$campaign" --duration "${seconds}s" --keep-cluster --out "$out" > "$out.stdout" 2>&1 || true
    line=$(grep "run phase" "$out/run.log")
    echo "round $round ackcheck: ${line#*] } (load $(cut -d' ' -f1-3 /proc/loadavg))"
}
