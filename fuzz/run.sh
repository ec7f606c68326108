#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), seeded with the project's own histories
# and campaign files; prints each target's executions and fails on the first crash (its input
# is then in fuzz/artifacts/TARGET/). Usage: bash fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(history_reader checker campaign)
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    case $target in
        history_reader) seeds=(fuzz/seeds/history examples) ;;
        campaign) seeds=(workloads) ;;
        *) seeds=() ;;
    esac
    # No sanitizer: the code is safe Rust, and without one libFuzzer runs several times faster;
    # panics and the targets' own assertions are what is looked for.
    log="fuzz/corpus/$target.log"
    if ! cargo +nightly fuzz run -O -s none "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -max_len=65536 > "$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz target $target failed: see fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$log" | sed "s/^/$target: /"
done
