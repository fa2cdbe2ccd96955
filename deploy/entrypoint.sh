#!/bin/sh
# Container entrypoint: run `fraudflow run` as one process of a Bytewax cluster.
#
# In a StatefulSet the pod name (HOSTNAME) is NAME-ORDINAL; the ordinal is the Bytewax
# process id and the peers are NAME-0..NAME-(R-1) behind the headless service:
#   CLUSTER_REPLICAS    number of processes R (default 1; must equal the StatefulSet's replicas)
#   CLUSTER_ADDRESSES   "host:port;host:port;..." overrides the computed addresses
#   HEADLESS_SERVICE    DNS name of the headless service (default NAME-headless)
#   CLUSTER_PORT        port of the Bytewax cluster traffic (default 2101)
# With one process and no CLUSTER_ADDRESSES, no cluster flags are passed. Every other
# setting comes from FRAUDFLOW_* variables (docs/configuration.md); extra arguments are
# appended to `fraudflow run`.
set -eu

replicas="${CLUSTER_REPLICAS:-1}"
# HOSTNAME is set by Docker and Kubernetes (the pod name), not by POSIX sh itself
# shellcheck disable=SC3028
host="${HOSTNAME:-$(hostname)}"
ordinal="${host##*-}"
name="${host%-*}"

die() {
    echo "entrypoint: $*" >&2
    exit 64
}

case "$replicas" in
    '' | *[!0-9]* | 0) die "CLUSTER_REPLICAS must be a positive integer, got '$replicas'" ;;
esac

if [ "$replicas" -eq 1 ] && [ -z "${CLUSTER_ADDRESSES:-}" ]; then
    exec fraudflow run "$@"
fi

case "$ordinal" in
    '' | *[!0-9]*) die "HOSTNAME '$host' does not end in -ORDINAL (a StatefulSet pod name)" ;;
esac
[ "$host" != "$ordinal" ] || die "HOSTNAME '$host' does not end in -ORDINAL (a StatefulSet pod name)"

if [ -n "${CLUSTER_ADDRESSES:-}" ]; then
    addresses="$CLUSTER_ADDRESSES"
else
    service="${HEADLESS_SERVICE:-$name-headless}"
    port="${CLUSTER_PORT:-2101}"
    addresses=""
    i=0
    while [ "$i" -lt "$replicas" ]; do
        addresses="${addresses:+$addresses;}$name-$i.$service:$port"
        i=$((i + 1))
    done
fi

count=$(printf '%s' "$addresses" | awk -F';' '{ print NF }')
[ "$ordinal" -lt "$count" ] || die "process id $ordinal is outside the $count addresses '$addresses'"

echo "entrypoint: process $ordinal of $count: $addresses" >&2
exec fraudflow run --process-id "$ordinal" --addresses "$addresses" "$@"
