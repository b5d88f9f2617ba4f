#!/usr/bin/env bash
# Runs the simulated-agents benchmark against a fresh control plane (release
# build) per fleet size on this machine, and prints its figures, then one
# table of every size. Needs PostgreSQL and Redis as ./ops/test starts them.
#
#   bench/agents.sh                                # 1,000, 5,000 and 10,000 agents
#   bench/agents.sh --fleets 200 --duration 20     # one small fleet
#   bench/agents.sh --fleets 10000 --replicas 3 --kill-after 20
#                      # 3 replicas, agents spread over them, one SIGKILLed 20 s in
#
# --fleets and --replicas are this script's; other arguments go to
# skypanel-bench-agents (--duration, --task-rate, --heartbeat-interval,
# --beat-connections, --kill-after, --stay: agents stay on the replica they were
# spread to instead of moving to their node's owner).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/lib.sh
. ops/lib.sh
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

fleets=1000,5000,10000
replicas=1
passed=()
while [ $# -gt 0 ]; do
    case $1 in
        --fleets) fleets=$2; shift 2 ;;
        --replicas) replicas=$2; shift 2 ;;
        *) passed+=("$1"); shift ;;
    esac
done

start_postgres
ensure_pg_role skypanel_bench skypanel_bench CREATEDB
start_redis 6392 "${TMPDIR:-/tmp}/skypanel-bench-redis" no

cargo build --release --quiet -p skypanel -p skypanel-bench
target="${CARGO_TARGET_DIR:-$(pwd)/target}/release"
export SKYPANEL_DATABASE_URL=postgres://skypanel_bench:skypanel_bench@127.0.0.1:5432/skypanel_bench
export SKYPANEL_REDIS_URL=redis://127.0.0.1:6392
export RUST_LOG=${RUST_LOG:-warn}
# The benchmark registers its whole fleet through the admin API from one
# address: its own control plane runs without request limits (0: none).
export SKYPANEL_RATE_LIMIT_API=0 SKYPANEL_RATE_LIMIT_USER=0

pids=()
trap 'for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done' EXIT
rows=()
for agents in ${fleets//,/ }; do
    psql_admin "DROP DATABASE IF EXISTS skypanel_bench WITH (FORCE)" >/dev/null
    psql_admin "CREATE DATABASE skypanel_bench OWNER skypanel_bench" >/dev/null
    redis-cli -p 6392 flushall >/dev/null
    export SKYPANEL_SECRET_KEY=$(random_hex 32) SKYPANEL_JWT_SECRET=$(random_hex 32)
    SKYPANEL_ADMIN_PASSWORD=bench-password "$target/skypanel" admin create --email bench@example.com >/dev/null
    pids=()
    bases=()
    for i in $(seq 0 $((replicas - 1))); do
        port=$((18099 + i))
        SKYPANEL_LISTEN=127.0.0.1:$port "$target/skypanel" serve > "${TMPDIR:-/tmp}/skypanel-bench-$i.log" 2>&1 &
        pids+=($!)
        bases+=("http://127.0.0.1:$port")
        for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/api/health" >/dev/null 2>&1 && break; sleep 0.2; done
    done
    if [ "$replicas" -gt 1 ]; then sleep 3; fi # the shards spread at the replicas' next beats
    say "$agents agents, $replicas control-plane replica(s)"
    out=$("$target/skypanel-bench-agents" --control-plane "$(IFS=,; echo "${bases[*]}")" --database-url "$SKYPANEL_DATABASE_URL" \
        --admin-email bench@example.com --admin-password bench-password --pid "$(IFS=,; echo "${pids[*]}")" --agents "$agents" --row \
        ${passed[@]+"${passed[@]}"} | tee -a /dev/stderr)
    rows+=("$(echo "$out" | sed -n 's/^ROW //p')")
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
done

echo
echo "| agents | pickup p50 | pickup p99 | max | tasks picked up | tasks lost | heartbeats handled/s | nodes not online | database connections | control plane CPU | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
