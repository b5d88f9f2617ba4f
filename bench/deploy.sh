#!/usr/bin/env bash
# Times deploys on this machine: a control plane and a local agent (release
# builds, their own database, Redis, image registry and nginx ingress), then
# skypanel-bench-deploy, which prints deploy-to-first-200 beside plain
# `docker run`, a cold build's platform share beside plain `docker build`, an
# environment change to its first answer, and a release the node must pull
# from the registry beside `docker pull` + `docker run`.
# Needs Docker. Arguments go to skypanel-bench-deploy (e.g. --rounds 11);
# BENCH_LOGS=DIR keeps the control plane's and the agent's logs there.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/lib.sh
. ops/lib.sh

ensure_packages nginx git busybox-static
start_postgres
ensure_pg_role skypanel_bench skypanel_bench CREATEDB
psql_admin "DROP DATABASE IF EXISTS skypanel_bench_deploy WITH (FORCE)" >/dev/null
psql_admin "CREATE DATABASE skypanel_bench_deploy OWNER skypanel_bench" >/dev/null
start_redis 6392 "${TMPDIR:-/tmp}/skypanel-bench-redis" no
build_sample_image skypanel-sample/hello:1
work=$(mktemp -d)
start_registry "$work/registry" 18050 http://127.0.0.1:18098/api/registry/token

cargo build --release --quiet -p skypanel -p skypanel-agent -p skypanel-bench
target="${CARGO_TARGET_DIR:-$(pwd)/target}/release"
export SKYPANEL_DATABASE_URL=postgres://skypanel_bench:skypanel_bench@127.0.0.1:5432/skypanel_bench_deploy
export SKYPANEL_REDIS_URL=redis://127.0.0.1:6392 SKYPANEL_QUEUE_PREFIX="bench-$$"
export SKYPANEL_SECRET_KEY=$(random_hex 32) SKYPANEL_JWT_SECRET=$(random_hex 32)
export SKYPANEL_LISTEN=127.0.0.1:18098 SKYPANEL_ALLOW_FILE_GIT=true SKYPANEL_PLATFORM_DOMAIN=localhost
export SKYPANEL_REGISTRY_URL=127.0.0.1:18050 SKYPANEL_REGISTRY_TOKEN_KEY="$work/registry/token.key"
export SKYPANEL_REGISTRY_TOKEN_CERT="$work/registry/token.crt"
export RUST_LOG=${RUST_LOG:-warn}
SKYPANEL_ADMIN_PASSWORD=bench-password "$target/skypanel" admin create --email bench@example.com >/dev/null
"$target/skypanel" serve > "$work/skypanel.log" 2>&1 &
cp_pid=$!
agent_pid=
cleanup() {
    set +e  # clean up everything, whatever fails
    [ -n "${BENCH_LOGS:-}" ] && mkdir -p "$BENCH_LOGS" && cp "$work"/*.log "$BENCH_LOGS"/
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
    kill "$cp_pid" 2>/dev/null || true
    kill "$(cat "$work/registry/registry.pid")" 2>/dev/null || true
    docker images --format '{{.Repository}}:{{.Tag}}' | grep '^127.0.0.1:18050/' | xargs -r docker rmi -f >/dev/null 2>&1 || true
    [ -f "$work/agent/ingress/nginx.pid" ] && kill "$(cat "$work/agent/ingress/nginx.pid")" 2>/dev/null
    for id in $(docker ps -aq --filter label=skypanel.managed=bench-); do docker rm -f "$id" >/dev/null; done
    for id in $(docker images -q --filter 'reference=bench-skypanel/*'); do docker rmi -f "$id" >/dev/null 2>&1; done
    for id in $(docker network ls -q --filter label=skypanel.managed=bench-); do docker network rm "$id" >/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
api=http://127.0.0.1:18098/api
for _ in $(seq 1 100); do curl -fsS "$api/health" >/dev/null 2>&1 && break; sleep 0.2; done
token=$(curl -fsS "$api/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench-password"}' | json_field access_token)
registration=$(curl -fsS "$api/admin/paas/nodes/register" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"name":"bench-node","region":"local","host_address":"127.0.0.1"}' \
    | json_field registration_token)
"$target/skypanel-agent" --control-plane http://127.0.0.1:18098 --token "$registration" \
    --state-dir "$work/agent" --namespace bench- --heartbeat-interval 5 \
    --ingress-address 127.0.0.1 --ingress-http-port 18180 --ingress-https-port 18543 --drain-seconds 1 \
    > "$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "$api/admin/paas/nodes" -H "authorization: Bearer $token" | grep -q '"status":"online"' && break
    sleep 0.2
done
"$target/skypanel-bench-deploy" --control-plane http://127.0.0.1:18098 \
    --admin-email bench@example.com --admin-password bench-password \
    --ingress-port 18180 --image skypanel-sample/hello:1 --registry 127.0.0.1:18050 "$@"
