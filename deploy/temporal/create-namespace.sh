#!/bin/sh
# The orderops namespace and its custom search attributes, run by the `temporal-namespace` job
# (temporalio/admin-tools) once the server answers, before any worker or console starts, on every
# `docker compose up`: safe to run again (what exists is left as it is).
#
# The search attributes are those `orderops server` registers on the embedded server
# (orderops/search_attributes.py, docs/operations.md "Another cluster"); tests/deploy/test_compose.py
# fails when this list and the code's differ.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is the Temporal frontend, HOST:PORT}"
: "${TEMPORAL_NAMESPACE:?TEMPORAL_NAMESPACE is the namespace the workers and the console use}"
retention="${RETENTION:-720h}"

# The `temporal` CLI (in the admin-tools image) on this cluster and namespace.
t() {
    temporal "$@" --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE"
}

# retry WHAT COMMAND...: up to 60 tries 5 s apart (a new namespace takes a few seconds to be usable).
retry() {
    what="$1"
    shift
    tries=0
    until "$@"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "gave up after $tries tries: $what" >&2
            return 1
        fi
        sleep 5
    done
}

retry "Temporal at $TEMPORAL_ADDRESS answering" t operator cluster health

# namespace: there already, or created now.
namespace() {
    t operator namespace describe >/dev/null 2>&1 || t operator namespace create --retention "$retention"
}

retry "namespace $TEMPORAL_NAMESPACE" namespace
echo "namespace $TEMPORAL_NAMESPACE ready (a new one keeps closed histories $retention)"

# search_attribute NAME TYPE: created unless the namespace has it already.
search_attribute() {
    if t operator search-attribute list | grep -qw "$1"; then
        echo "search attribute $1 exists"
        return 0
    fi
    t operator search-attribute create --name "$1" --type "$2"
}

search_attribute_created() {
    retry "search attribute $1 ($2)" search_attribute "$1" "$2"
}

search_attribute_created OrderStatus Keyword
search_attribute_created CurrentStep Keyword
search_attribute_created ProcessId Keyword
search_attribute_created ProcessVersion Int
search_attribute_created PromiseAt Datetime
search_attribute_created ShipBy Datetime
search_attribute_created Region Keyword
search_attribute_created ServiceLevel Keyword
search_attribute_created AtRisk Bool
search_attribute_created Breached Bool
echo "namespace $TEMPORAL_NAMESPACE ready for orderops"
