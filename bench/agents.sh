#!/usr/bin/env bash
# Runs the simulated-agents benchmark against a fresh control plane (release
# build) on this machine, and prints its figures. Needs PostgreSQL and Redis as
# ./ops/test starts them. Arguments go to skypanel-bench-agents
# (e.g. --agents 200 --duration 20).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/lib.sh
. ops/lib.sh
ulimit -n 65536 || ulimit -n 8192 || true

start_postgres
ensure_pg_role skypanel_bench skypanel_bench CREATEDB
psql_admin "DROP DATABASE IF EXISTS skypanel_bench WITH (FORCE)" >/dev/null
psql_admin "CREATE DATABASE skypanel_bench OWNER skypanel_bench" >/dev/null
start_redis 6392 "${TMPDIR:-/tmp}/skypanel-bench-redis" no

cargo build --release --quiet -p skypanel -p skypanel-bench
target="${CARGO_TARGET_DIR:-$(pwd)/target}/release"
export SKYPANEL_DATABASE_URL=postgres://skypanel_bench:skypanel_bench@127.0.0.1:5432/skypanel_bench
export SKYPANEL_REDIS_URL=redis://127.0.0.1:6392
export SKYPANEL_SECRET_KEY=$(random_hex 32) SKYPANEL_JWT_SECRET=$(random_hex 32)
export SKYPANEL_LISTEN=127.0.0.1:18099 SKYPANEL_DB_POOL_SIZE=32 RUST_LOG=${RUST_LOG:-warn}
SKYPANEL_ADMIN_PASSWORD=bench-password "$target/skypanel" admin create --email bench@example.com >/dev/null
"$target/skypanel" serve > "${TMPDIR:-/tmp}/skypanel-bench.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18099/api/health >/dev/null 2>&1 && break; sleep 0.2; done

"$target/skypanel-bench-agents" --control-plane http://127.0.0.1:18099 --database-url "$SKYPANEL_DATABASE_URL" \
    --admin-email bench@example.com --admin-password bench-password --pid "$pid" "$@"
