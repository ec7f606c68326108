#!/usr/bin/env bash
# Times the README's test command on a fresh start (issue 17): a new clone of this repository
# into DIR, an empty cargo target directory, an empty ACKCHECK_HOME, from `git clone` to the end
# of the command. Make the machine fresh first, as root, for example:
#   apt-get purge -y rabbitmq-server && apt-get autoremove --purge -y   # and no protoc, no uv
# (ackcheck and the tests install what they need again). Never beside another broker run: take
# the machine alone. Usage: bash bench/fresh-test-command.sh DIR
set -u
dir=${1:?usage: bash bench/fresh-test-command.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
echo "start $(date -u +%FT%TZ)"
rm -rf "$dir" && git clone -q "$repo" "$dir" && cd "$dir" || exit 9
git log --oneline -1
export ACKCHECK_HOME="$dir/home"
echo "rabbitmq-server: $(command -v rabbitmq-server || echo none), protoc: $(command -v protoc || echo none), uv: $(command -v uv || echo none)"
cmd=$(sed -n '/<!-- test-command -->/,/<!-- \/test-command -->/p' README.md | grep -v '^<!--' | grep -v '^```' | sed '/^\s*$/d')
echo "command: $cmd"
bash -euo pipefail -c "$cmd"
rc=$?
echo "exit $rc after $(( $(date +%s) - start )) s (clone to result), end $(date -u +%FT%TZ)"
for b in kafka rabbitmq sqs pulsar nats; do target/debug/ackcheck cluster down "$b" >/dev/null 2>&1 || true; done
exit $rc
