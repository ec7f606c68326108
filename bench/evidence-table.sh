#!/usr/bin/env bash
# The evidence table of docs/evidence.md: every campaign given (default: every file in
# workloads/ except the benchmark's) × seeds, each for the duration its file gives (60 s for
# most; the Kafka Streams campaigns run 90-120 s because Streams needs that long to recover
# between faults), one after another (brokers share ports and the machine's two cores: never
# run two at once). DURATION=60s runs every campaign for that long instead. Each run's directory
# is kept under DIR; a run already finished there (its verdict.json exists) is not run again, so
# the script resumes.
# Prints one Markdown table row per run. RECHECK=1 grades the recorded histories again without
# running anything new.
# Usage: bash bench/evidence-table.sh DIR "1 2 3" [CAMPAIGN.toml ...]
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/ackcheck-evidence}
seeds=${2:-"1 2 3"}
shift 2 2>/dev/null || shift $#
campaigns=("$@")
if [ ${#campaigns[@]} -eq 0 ]; then
    mapfile -t campaigns < <(ls workloads/*.toml | grep -v -e kafka-bench -e quickstart)
fi
command -v jq >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq jq >/dev/null; } || { echo "needs jq: apt-get install jq" >&2; exit 2; }
bin=${ACKCHECK_BIN:-target/release/ackcheck}
[ -x "$bin" ] || cargo build --release --bin ackcheck
mkdir -p "$dir"
for campaign in "${campaigns[@]}"; do
    name=$(basename "$campaign" .toml)
    for seed in $seeds; do
        out="$dir/$name-seed$seed"
        if [ ! -s "$out/verdict.json" ]; then
            rm -rf "$out"
            "$bin" run "$campaign" ${DURATION:+--duration "$DURATION"} --seed "$seed" --out "$out" > "$out.txt" 2>&1
            echo "exit $?" >> "$out.txt"
        fi
        # RECHECK=1: grade the recorded history again with this binary's checker (the grade is a
        # function of the history, so a changed rule needs no new run).
        if [ "${RECHECK:-0}" = 1 ] && [ -s "$out/history.jsonl" ]; then
            "$bin" check --json "$out/history.jsonl" > "$out/verdict.json" 2>/dev/null
        fi
        jq -r --arg run "$name" --arg seed "$seed" '
            def s(x): if x == null then "–" else ((x.to - x.from) / 1e9 * 10 | round / 10 | tostring) + " s" end;
            "| \($run) | \($seed) | \(.verdict) | \(if .claim_holds then "holds" else "VIOLATED" end) | \(.evidence.grade) | \(.evidence.faults_started)/\(.evidence.faults_scheduled) | \(.evidence.crashes)/\(.evidence.crashes_scheduled) | \((.evidence.progress_share // 0) * 100 | round) % | \([s(.evidence.longest_stall_acked), s(.evidence.longest_stall_delivered)] | join(" / ")) | \(.counts.messages) | \(.counts.lost) | \(.counts.duplicated) | \(.evidence.reasons | join("; ")) |"
        ' "$out/verdict.json" 2>/dev/null || echo "| $name | $seed | (no verdict: see $out.txt) |"
    done
done
