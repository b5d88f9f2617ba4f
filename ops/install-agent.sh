#!/usr/bin/env bash
# Installs and starts the SkyPanel agent on this machine, making it a worker
# node of the control plane at CONTROL_PLANE_URL.
#
#   sudo ./ops/install-agent.sh CONTROL_PLANE_URL
#
# It asks for the one-time registration token (spr_…) or reads it from its
# standard input (printf %s "$TOKEN" | sudo ./ops/install-agent.sh URL): a
# token on a command line is visible to every user of the machine (ps). The
# token goes to /etc/skypanel-agent.token (mode 0600), which the agent deletes
# once it has registered.
#
# Run it from a SkyPanel checkout: the agent is built here with cargo (or taken
# from SKYPANEL_AGENT_BINARY); nothing is downloaded from outside Debian's
# package mirrors. Docker Engine, nginx (the node's ingress: the agent runs
# its own instance on ports 80 and 443) and git (for builds) are installed from
# Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ops/lib.sh
. ops/lib.sh

[ $# -eq 1 ] || die "usage: $0 CONTROL_PLANE_URL (the registration token is asked for, or read from standard input; never give it as an argument)"
control_plane=${1%/}
case "$control_plane" in http://*|https://*) ;; *) die "CONTROL_PLANE_URL must start with http:// or https://" ;; esac
if [ -t 0 ]; then
    printf 'Registration token (spr_…, from POST /api/admin/paas/nodes/register): ' >&2
    IFS= read -rs token || true
    echo >&2
else
    IFS= read -r token || true
fi
token=$(printf %s "$token" | tr -d '[:space:]')
case "$token" in spr_*) ;; *) die "the registration token must be the spr_… token the node registration answered" ;; esac

if ! command -v docker >/dev/null 2>&1; then
    ensure_packages docker.io
fi
docker info >/dev/null 2>&1 || die "Docker Engine does not answer; start it (systemctl start docker) and run this again"
ensure_packages nginx git
# Debian's own nginx service would hold port 80: the agent runs the node's.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now nginx.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/nginx ]; then
    as_root /etc/init.d/nginx stop >/dev/null 2>&1 || true
fi

binary=${SKYPANEL_AGENT_BINARY:-}
if [ -z "$binary" ]; then
    say "building the agent (cargo build --release -p skypanel-agent)"
    cargo build --release --quiet -p skypanel-agent
    binary="${CARGO_TARGET_DIR:-$(pwd)/target}/release/skypanel-agent"
fi
[ -x "$binary" ] || die "no agent binary at $binary"

say "installing /usr/local/bin/skypanel-agent"
as_root install -m 0755 "$binary" /usr/local/bin/skypanel-agent
as_root install -d -m 0700 /var/lib/skypanel-agent
# The token works once: the agent deletes its file after registering, and
# from then on the credential in /var/lib/skypanel-agent is what counts.
umask 077
staged=$(mktemp)
printf '%s\n' "$token" > "$staged"
as_root install -m 0600 "$staged" /etc/skypanel-agent.token
cat > "$staged" <<ENV
SKYPANEL_AGENT_CONTROL_PLANE=$control_plane
SKYPANEL_AGENT_TOKEN_FILE=/etc/skypanel-agent.token
SKYPANEL_AGENT_STATE_DIR=/var/lib/skypanel-agent
ENV
as_root install -m 0600 "$staged" /etc/skypanel-agent.env
rm -f "$staged"

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    say "installing and starting the systemd unit skypanel-agent.service"
    as_root install -m 0644 ops/systemd/skypanel-agent.service /etc/systemd/system/skypanel-agent.service
    as_root systemctl daemon-reload
    as_root systemctl enable --now skypanel-agent.service
    echo "The agent runs: systemctl status skypanel-agent; journalctl -u skypanel-agent -f"
else
    # No systemd (a container, say): run it in the background instead.
    say "no systemd here; starting the agent in the background"
    as_root mkdir -p /var/log/skypanel
    as_root sh -c 'set -a; . /etc/skypanel-agent.env; set +a; nohup /usr/local/bin/skypanel-agent >>/var/log/skypanel/agent.log 2>&1 & echo $! > /run/skypanel-agent.pid'
    echo "The agent runs (pid $(cat /run/skypanel-agent.pid)); its log is /var/log/skypanel/agent.log"
fi
