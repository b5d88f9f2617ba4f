#!/usr/bin/env bash
# Times hourly billing on this machine: a fresh database filled with 100,000
# running resources, then skypanel-bench-billing bills one hour (and the same
# hour again) and prints seconds and records per second. Arguments go to
# skypanel-bench-billing (e.g. --resources 200000 --customers 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/lib.sh
. ops/lib.sh

start_postgres
ensure_pg_role skypanel_bench skypanel_bench CREATEDB
psql_admin "DROP DATABASE IF EXISTS skypanel_bench_billing WITH (FORCE)" >/dev/null
psql_admin "CREATE DATABASE skypanel_bench_billing OWNER skypanel_bench" >/dev/null
cargo build --release --quiet -p skypanel-bench --bin skypanel-bench-billing
target="${CARGO_TARGET_DIR:-$(pwd)/target}/release"
RUST_LOG=${RUST_LOG:-warn} "$target/skypanel-bench-billing" \
    --database-url postgres://skypanel_bench:skypanel_bench@127.0.0.1:5432/skypanel_bench_billing "$@"
psql_admin "DROP DATABASE IF EXISTS skypanel_bench_billing WITH (FORCE)" >/dev/null
