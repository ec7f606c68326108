#!/usr/bin/env bash
# Installs Debian's rabbitmq-server package for ackcheck's local RabbitMQ clusters, without letting
# the package start its own node: ackcheck runs its nodes itself (own names, ports, cookies, epmd).
# Idempotent; run as root. ackcheck runs it (embedded) when RabbitMQ is missing; by hand:
# bash src/brokers/rabbitmq/install-debian.sh
set -euo pipefail

# Every program ackcheck runs from the package: a CI run once found the package installed with
# part of /usr/lib/rabbitmq/bin missing (rabbitmqctl among them), so the files are what counts.
complete() {
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && [ -x /usr/lib/rabbitmq/bin/rabbitmqctl ] \
        && dpkg -s rabbitmq-server >/dev/null 2>&1
}

if complete; then
    echo "rabbitmq-server is already installed: $(dpkg-query -W -f='${Version}' rabbitmq-server)"
else
    # A policy-rc.d that exits 101 tells invoke-rc.d not to start services during the install.
    policy=/usr/sbin/policy-rc.d
    had_policy=0
    if [ -e "$policy" ]; then
        had_policy=1
        cp -p "$policy" "$policy.ackcheck-saved"
    fi
    restore_policy() {
        if [ "$had_policy" = 1 ]; then mv -f "$policy.ackcheck-saved" "$policy"; else rm -f "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"

    export DEBIAN_FRONTEND=noninteractive
    # --reinstall: also mends a package whose files went missing (it is a plain install otherwise).
    if ! apt-get install -y --reinstall rabbitmq-server; then
        # A fresh machine may have no package lists yet.
        apt-get update
        apt-get install -y --reinstall rabbitmq-server
    fi
    if ! complete; then
        echo "rabbitmq-server installed without all of its programs; installing it again" >&2
        apt-get install -y --reinstall rabbitmq-server
    fi
    restore_policy
    trap - EXIT
fi

# Should the package have started its own node anyway (systemd, or a start script that ignored
# policy-rc.d), stop it and the epmd it brought, so that nothing holds 5672/4369/25672.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
    systemctl stop rabbitmq-server || true
fi
for pid in $(pgrep -u rabbitmq -x beam.smp 2>/dev/null || true) $(pgrep -u rabbitmq -x epmd 2>/dev/null || true); do
    kill -9 "$pid" 2>/dev/null || true
done
echo "rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server) installed; its own node is not running"
