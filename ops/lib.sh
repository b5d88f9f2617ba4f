# Shared helpers for ops/up and ops/test: install what is missing with apt,
# start PostgreSQL and Redis on loopback, create roles and databases.
# Every function is idempotent: running it twice changes nothing the second time.
# shellcheck shell=bash

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly when we are root).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs a command as the postgres system user.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

# ensure_packages PKG...: installs the Debian packages that are not installed yet.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# start_postgres: makes sure a PostgreSQL cluster runs and answers on 127.0.0.1:5432.
start_postgres() {
    ensure_packages postgresql
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    [ -n "$version" ] || die "PostgreSQL is installed but no server version was found"
    if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$version/main"; then
        say "creating PostgreSQL $version cluster"
        as_root pg_createcluster "$version" main >/dev/null
    fi
    if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
        say "starting PostgreSQL $version"
        as_root pg_ctlcluster "$version" main start
    fi
    local i
    for i in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return 0
        sleep 0.5
    done
    die "PostgreSQL did not start; see /var/log/postgresql/"
}

# psql_admin SQL: runs SQL as the postgres superuser.
psql_admin() {
    as_postgres psql -v ON_ERROR_STOP=1 -qAt -c "$1"
}

# ensure_pg_role NAME PASSWORD [EXTRA]: creates the login role or resets its password.
ensure_pg_role() {
    local name=$1 password=$2 extra=${3:-}
    if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = '$name'")" = "1" ]; then
        psql_admin "ALTER ROLE $name WITH LOGIN $extra PASSWORD '$password'" >/dev/null
    else
        psql_admin "CREATE ROLE $name WITH LOGIN $extra PASSWORD '$password'" >/dev/null
    fi
}

# ensure_pg_database NAME OWNER
ensure_pg_database() {
    local name=$1 owner=$2
    if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$name'")" != "1" ]; then
        psql_admin "CREATE DATABASE $name OWNER $owner" >/dev/null
    fi
}

# start_redis PORT DIR [PERSIST]: a redis-server of our own on 127.0.0.1:PORT,
# its files in DIR; PERSIST=yes keeps an append-only file.
start_redis() {
    local port=$1 dir=$2 persist=${3:-no}
    ensure_packages redis-server
    if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p "$dir"
    say "starting Redis on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes --daemonize yes \
        --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" \
        --appendonly "$persist" --save "" >/dev/null
    local i
    for i in $(seq 1 40); do
        redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "Redis did not start on port $port; see $dir/redis.log"
}

# random_hex BYTES: that many random bytes as hex.
random_hex() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# build_sample_image TAG: a tiny image from busybox that answers HTTP on $PORT
# (there is no registry to pull from on these machines).
build_sample_image() {
    local tag=$1
    docker image inspect "$tag" >/dev/null 2>&1 && return 0
    ensure_packages busybox-static
    local root
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/www" "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in sh httpd sleep cat echo ls env; do ln -s busybox "$root/bin/$applet"; done
    echo "hello from skypanel" > "$root/www/index.html"
    tar -C "$root" -c . | docker import \
        --change 'CMD ["/bin/sh","-c","exec httpd -f -p ${PORT:-8080} -h /www"]' - "$tag" >/dev/null
    rm -rf "$root"
}

# json_field FIELD: reads JSON on stdin and prints one top-level field.
json_field() {
    python3 -c "import json,sys; v=json.load(sys.stdin).get('$1'); print('' if v is None else v)"
}

# start_registry DIR PORT REALM: the platform's image registry (Debian's
# CNCF distribution registry) on 127.0.0.1:PORT, its images in DIR/storage,
# with token auth: tokens signed by the control plane (realm REALM) with the
# key DIR/token.key, whose certificate DIR/token.crt the registry trusts.
# The key and the HTTP secret are made once and kept.
start_registry() {
    local dir=$1 port=$2 realm=$3
    ensure_packages docker-registry openssl
    mkdir -p "$dir/storage"
    chmod 700 "$dir"
    if [ ! -f "$dir/token.key" ]; then
        say "making the registry's token key"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
            -subj /CN=skypanel-registry-token -keyout "$dir/token.key" -out "$dir/token.crt" 2>/dev/null
        chmod 600 "$dir/token.key"
    fi
    [ -f "$dir/http-secret" ] || { random_hex 16 > "$dir/http-secret"; chmod 600 "$dir/http-secret"; }
    cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $(cat "$dir/http-secret")
auth:
  token:
    realm: $realm
    service: skypanel-registry
    issuer: skypanel
    rootcertbundle: $dir/token.crt
YAML
    local pid
    pid=$(cat "$dir/registry.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        # Ours, still running: started again so that it reads this configuration.
        kill -TERM "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is taken by another program; choose the registry's port with SKYPANEL_REGISTRY_PORT"
    fi
    say "starting the image registry on 127.0.0.1:$port"
    nohup docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
    echo $! > "$dir/registry.pid"
    local i
    for i in $(seq 1 40); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 401 ] && return 0
        sleep 0.25
    done
    die "the registry did not start on port $port; see $dir/registry.log"
}

# start_balancer DIR PORT N: nginx on 127.0.0.1:PORT in front of the control
# plane's N replicas on PORT+1..PORT+N (configuration and pid in DIR). Each
# request goes to one replica and to the next when that one does not answer;
# upgrades (agents' lease streams, attached runs) pass through; the two sides
# of a run's session reach the same replica (hashed on the run).
start_balancer() {
    local dir=$1 port=$2 count=$3 i servers=""
    mkdir -p "$dir/tmp"
    for i in $(seq 1 "$count"); do
        servers="${servers}        server 127.0.0.1:$((port + i)) max_fails=1 fail_timeout=5s;
"
    done
    cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    client_max_body_size 0;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
    map \$uri \$run_session { "~^/api/(internal/)?paas/runs/(?<run>[0-9]+)/session\$" \$run; default ""; }
    upstream skypanel {
$servers        keepalive 64;
    }
    upstream skypanel_sessions {
        hash \$run_session consistent;
$servers    }
    server {
        listen 127.0.0.1:$port;
        proxy_http_version 1.1;
        proxy_set_header Host \$http_host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header Upgrade \$http_upgrade;
        proxy_set_header Connection \$connection_upgrade;
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_connect_timeout 2s;
        proxy_next_upstream error timeout http_502 http_503;
        location ~ ^/api/(internal/)?paas/runs/[0-9]+/session\$ { proxy_pass http://skypanel_sessions; }
        location / { proxy_pass http://skypanel; }
    }
}
CONF
    nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || die "the load balancer's configuration is refused (see $dir/nginx.conf)"
    if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is taken by another program; choose the API's port with SKYPANEL_PORT"
    fi
    nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || die "the load balancer did not start; see $dir/error.log"
    for i in $(seq 1 40); do
        curl -fsS "http://127.0.0.1:$port/api/health" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "the load balancer does not answer on port $port; see $dir/error.log"
}
