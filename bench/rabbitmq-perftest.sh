#!/usr/bin/env bash
# Throughput of the RabbitMQ at-least-once queue workload (`ackcheck run`: quorum queue,
# persistent 100-byte messages, publisher confirms, manual acks, history recorded to disk)
# against RabbitMQ's own PerfTest (com.rabbitmq:perf-test from Maven Central) with the same
# settings: confirms on (16 unconfirmed per producer, as ackcheck's 16 sends in flight), 2
# producers, 3 consumers with prefetch 200, the same node through the same Toxiproxy port.
# The two alternate, ROUNDS times each, in one session. Needs java and mvn.
# Usage: bash bench/rabbitmq-perftest.sh [DIR] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/ackcheck-bench/rabbitmq}
rounds=${2:-3}
seconds=${3:-30}
mkdir -p "$dir"
cargo build --release --bin ackcheck
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/ackcheck
home=${ACKCHECK_HOME:-$HOME/.cache/ackcheck}

perftest_version=2.22.1
perf=$home/install/perf-test-$perftest_version
if [ ! -d "$perf/lib" ]; then
    mkdir -p "$perf.partial"
    cat > "$perf.partial/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ackcheck.bench</groupId><artifactId>perftest-install</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>com.rabbitmq</groupId><artifactId>perf-test</artifactId><version>$perftest_version</version></dependency>
  </dependencies>
</project>
EOF
    cat > "$perf.partial/settings.xml" <<'EOF'
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <mirrors>
    <mirror><id>central-only</id><mirrorOf>*,!central</mirrorOf><url>http://0.0.0.0/</url><blocked>true</blocked></mirror>
  </mirrors>
</settings>
EOF
    (cd "$perf.partial" && mvn -q -B --global-settings settings.xml \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DoutputDirectory=lib -DincludeScope=runtime)
    rm -rf "$perf" && mv "$perf.partial" "$perf"
fi

source bench/queue-bench.sh
queue_bench_campaign rabbitmq "$dir/rabbitmq-bench.toml"

"$bin" cluster up rabbitmq > /dev/null
trap '"$bin" cluster down rabbitmq > /dev/null' EXIT
# Node 0's client port in the port plan (its Toxiproxy proxy), the one ackcheck's clients use.
url="amqp://guest:guest@127.0.0.1:19100/%2f"

for round in $(seq "$rounds"); do
    ackcheck_round "$bin" "$dir/rabbitmq-bench.toml" "$seconds" "$dir/ackcheck-$round" "$round"
    java -Xmx256m -cp "$perf/lib/*" com.rabbitmq.perf.PerfTest --uri "$url" \
        --producers 2 --consumers 3 --size 100 --confirm 16 --flag persistent --qos 200 --multi-ack-every 20 \
        --quorum-queue --queue "perftest-$round-$$" --time "$seconds" > "$dir/perftest-$round.log" 2>&1
    echo "round $round PerfTest: $(grep -E 'sending rate avg' "$dir/perftest-$round.log" | tail -1) (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
