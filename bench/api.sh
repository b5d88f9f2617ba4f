#!/usr/bin/env bash
# Measures the customer API's read path on this machine: a control plane
# (release build, its own database and Redis, request limits raised far out
# of the way but still counted), a customer with 10 applications, then
#   - wrk (2 threads, 16 connections, 10 s): GET /api/paas/applications with
#     a bearer token, and GET /api/health: requests/s, p50, p99;
#   - skypanel-bench-api at a fixed 5,000 requests/s (open loop): p50, p99.
# Needs PostgreSQL and Redis as ./ops/test starts them, and wrk.
#
#   bench/api.sh                      # the figures above
#   bench/api.sh --with-agents 10000  # the same while a fleet of simulated
#                                     # agents heartbeats and long-polls
#   bench/api.sh --console            # instead: the web console in headless
#                                     # Chromium (bench/console.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/lib.sh
. ops/lib.sh
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

agents=0
console=no
while [ $# -gt 0 ]; do
    case $1 in
        --with-agents) agents=$2; shift 2 ;;
        --console) console=yes; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

ensure_packages wrk
start_postgres
ensure_pg_role skypanel_bench skypanel_bench CREATEDB
start_redis 6392 "${TMPDIR:-/tmp}/skypanel-bench-redis" no
psql_admin "DROP DATABASE IF EXISTS skypanel_bench_api WITH (FORCE)" >/dev/null
psql_admin "CREATE DATABASE skypanel_bench_api OWNER skypanel_bench" >/dev/null
redis-cli -p 6392 flushall >/dev/null

cargo build --release --quiet -p skypanel -p skypanel-bench
target="${CARGO_TARGET_DIR:-$(pwd)/target}/release"
export SKYPANEL_DATABASE_URL=postgres://skypanel_bench:skypanel_bench@127.0.0.1:5432/skypanel_bench_api
export SKYPANEL_REDIS_URL=redis://127.0.0.1:6392
export SKYPANEL_LISTEN=127.0.0.1:18097 RUST_LOG=${RUST_LOG:-warn}
export SKYPANEL_SECRET_KEY=$(random_hex 32) SKYPANEL_JWT_SECRET=$(random_hex 32)
# Limits far above what the benchmark sends, so every request is counted
# (the limiter's cost is part of the figures) and none is refused.
export SKYPANEL_RATE_LIMIT_API=1000000 SKYPANEL_RATE_LIMIT_USER=1000000
# The console's figures are of a customer with 200 applications (the quota is 50).
export SKYPANEL_MAX_APPS_PER_USER=1000
log="${TMPDIR:-/tmp}/skypanel-bench-api.log"
SKYPANEL_ADMIN_PASSWORD=bench-password "$target/skypanel" admin create --email bench@example.com >/dev/null
"$target/skypanel" serve > "$log" 2>&1 &
pid=$!
fleet=""
trap 'kill $pid $fleet 2>/dev/null || true' EXIT
base=http://127.0.0.1:18097
for _ in $(seq 1 100); do
    curl -fsS "$base/api/health" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
done
apps=10
[ "$console" = yes ] && apps=200
token=$("$target/skypanel-bench-api" --control-plane "$base" setup \
    --admin-email bench@example.com --admin-password bench-password --apps "$apps")
if [ "$console" = yes ]; then
    ensure_packages chromium
    say "the web console in headless Chromium (a customer with $apps applications)"
    "$target/skypanel-bench-console" --control-plane "$base" --token "$token"
    exit 0
fi

if [ "$agents" -gt 0 ]; then
    say "starting $agents simulated agents"
    "$target/skypanel-bench-agents" --control-plane "$base" --database-url "$SKYPANEL_DATABASE_URL" \
        --admin-email bench@example.com --admin-password bench-password --agents "$agents" \
        --duration 120 > "${TMPDIR:-/tmp}/skypanel-bench-api-agents.log" 2>&1 &
    fleet=$!
    # Wait until the fleet measures (every node online), as bench/agents.sh does.
    for _ in $(seq 1 600); do
        grep -q "measuring" "${TMPDIR:-/tmp}/skypanel-bench-api-agents.log" 2>/dev/null && break
        kill -0 "$fleet" 2>/dev/null || { cat "${TMPDIR:-/tmp}/skypanel-bench-api-agents.log"; exit 1; }
        sleep 1
    done
fi

wrk_figures() {  # $1: path, $2...: extra wrk arguments
    local path=$1; shift
    wrk -t2 -c16 -d10s --latency "$@" "$base$path" | awk -v path="$path" '
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
        / Non-2xx/ { bad = $NF }
        END { printf "wrk GET %s: %s requests/s, p50 %s, p99 %s, %s not 2xx\n", path, rps, p50, p99, bad + 0 }'
}

say "closed loop (wrk, 2 threads, 16 connections, 10 s)"
wrk_figures /api/paas/applications -H "Authorization: Bearer $token"
wrk_figures /api/health
say "open loop (a fixed rate)"
"$target/skypanel-bench-api" --control-plane "$base" rate --path /api/paas/applications \
    --token "$token" --rate 5000 --duration 10
"$target/skypanel-bench-api" --control-plane "$base" rate --path /api/health --rate 5000 --duration 10
