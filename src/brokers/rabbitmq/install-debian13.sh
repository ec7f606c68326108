#!/usr/bin/env bash
# Installs Debian 13's rabbitmq-server (RabbitMQ 4.0, Erlang 27) into a Debian 13 root of its own,
# for ackcheck's `version = "4.0.5"`: Debian 12 has no Erlang new enough, and installing Debian 13's
# next to the system's would replace the C library. debootstrap (from Debian 12's packages) builds
# the root from Debian's own archive; ackcheck runs the nodes in it with chroot. Run as root.
# Usage: bash install-debian13.sh ROOT
set -euo pipefail
root=$1
if [ -x "$root/usr/lib/rabbitmq/bin/rabbitmq-server" ]; then
    echo "Debian 13's rabbitmq-server is already in $root"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get install -y debootstrap || { apt-get update && apt-get install -y debootstrap; }
fi
# Built beside the final place and moved there when complete, so that an interrupted install
# is never taken for a finished one.
partial="$root.partial"
rm -rf "$partial"
mkdir -p "$(dirname "$root")"
debootstrap --variant=minbase --include=rabbitmq-server trixie "$partial" http://deb.debian.org/debian
# Nothing from the package runs in the root until ackcheck starts its nodes.
pkill -f "$partial/" 2>/dev/null || true
rm -rf "$root"
mv "$partial" "$root"
echo "Debian 13's rabbitmq-server $(chroot "$root" dpkg-query -W -f='${Version}' rabbitmq-server) installed in $root"
