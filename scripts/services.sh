#!/usr/bin/env bash
# Makes sure Postgres and Redis are reachable for modelpress (sourced by setup.sh and start.sh).
# Uses DATABASE_URL / REDIS_URL when they answer; otherwise starts local servers, installing them with
# apt when running as root (Debian packages postgresql, redis-server).
set -euo pipefail

: "${DATABASE_URL:=postgresql://postgres@127.0.0.1:5432/modelpress}"
: "${REDIS_URL:=redis://127.0.0.1:6379}"
export DATABASE_URL REDIS_URL

pg_up() { node -e '
  const pg = require("pg"); const u = new URL(process.argv[1]); u.pathname = "/postgres";
  const c = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 2000 });
  c.connect().then(() => c.end()).then(() => process.exit(0), () => process.exit(1));' "$DATABASE_URL" 2>/dev/null; }
redis_up() { node -e '
  const net = require("net"); const u = new URL(process.argv[1]);
  const s = net.connect(Number(u.port || 6379), u.hostname); s.setTimeout(2000);
  s.on("connect", () => s.write("PING\r\n")); s.on("data", (d) => process.exit(String(d).startsWith("+PONG") || String(d).includes("NOAUTH") ? 0 : 1));
  s.on("error", () => process.exit(1)); s.on("timeout", () => process.exit(1));' "$REDIS_URL" 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "services: $* not installed and not root: install them (apt-get install $*) or set DATABASE_URL/REDIS_URL" >&2
    exit 1
  fi
  echo "services: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! pg_up; then
  host=$(node -p 'new URL(process.argv[1]).hostname' "$DATABASE_URL")
  if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
    echo "services: Postgres at $host (DATABASE_URL) does not answer" >&2; exit 1
  fi
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$ver main"; then pg_createcluster "$ver" main >/dev/null; fi
  # trust local TCP connections for the dev user (as the CI machine has); a real deployment sets DATABASE_URL
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if [ -w "$hba" ] && ! grep -q "modelpress" "$hba"; then
    sed -i '1i host all postgres 127.0.0.1/32 trust # modelpress dev\nhost all postgres ::1/128 trust # modelpress dev' "$hba"
  fi
  echo "services: starting Postgres $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "services: Postgres did not come up" >&2; exit 1; }
fi

if ! redis_up; then
  host=$(node -p 'new URL(process.argv[1]).hostname' "$REDIS_URL")
  if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
    echo "services: Redis at $host (REDIS_URL) does not answer" >&2; exit 1
  fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  port=$(node -p 'new URL(process.argv[1]).port || 6379' "$REDIS_URL")
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  echo "services: starting Redis on port $port"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
    --maxmemory-policy noeviction --dir /var/lib/redis --logfile /var/log/redis/modelpress.log
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  redis_up || { echo "services: Redis did not come up" >&2; exit 1; }
fi
echo "services: Postgres and Redis are up"
