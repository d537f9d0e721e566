#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests (Debian's postgresql package).
#
#   bash scripts/pg.sh start DIR PORT   # fresh cluster in DIR, on 127.0.0.1:PORT; prints its URL
#   bash scripts/pg.sh stop DIR
#   bash scripts/pg.sh resume DIR PORT  # start the stopped cluster in DIR again, data kept
#
# The cluster belongs to the `postgres` system user when run as root (PostgreSQL
# refuses to run as root), listens on 127.0.0.1 only, keeps its unix socket in
# DIR, trusts local connections (it is a test server) and runs with fsync on.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR | resume DIR PORT" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
path=$(realpath -ms "$2")  # DIR as given (maybe a symlink made by an earlier start)
dir=$(realpath -m "$2")    # where the cluster really is

# Debian's server binaries (not on PATH); the newest installed version.
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || {
  echo "pg.sh: no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)" >&2
  exit 1
}

as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  as_owner=(runuser -u postgres --)
fi

stop() {
  if [ -f "$dir/data/postmaster.pid" ] && [ -x "$bin/pg_ctl" ]; then
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
      "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
}

run() {
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $1 -c unix_socket_directories=$dir/sock \
        -c fsync=on -c synchronous_commit=on -c max_connections=300" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

case "$cmd" in
  start)
    [ $# -eq 3 ] || usage
    port=$3
    stop  # a cluster left running by an interrupted run
    rm -rf "$dir" "$path"
    dir=$path
    mkdir -p "$(dirname "$dir")"
    # The cluster lives in DIR unless the postgres user cannot reach it (a
    # checkout under /root) or its socket path would be too long for a unix
    # socket: then under /tmp, with DIR a symlink to it.
    if { [ ${#as_owner[@]} -gt 0 ] && ! runuser -u postgres -- test -x "$(dirname "$dir")"; } ||
       [ ${#dir} -gt 80 ]; then
      real=$(mktemp -d /tmp/drover-pg.XXXXXX)
      chmod 755 "$real"
      ln -s "$real" "$dir"
      dir=$real
    fi
    mkdir -p "$dir/sock"
    [ ${#as_owner[@]} -eq 0 ] || chown -R postgres: "$dir"
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
      --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    run "$port"
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    stop
    ;;
  resume)
    [ $# -eq 3 ] || usage
    [ -d "$dir/data" ] || { echo "pg.sh: no cluster in $dir" >&2; exit 1; }
    run "$3"
    echo "postgresql://postgres@127.0.0.1:$3/postgres"
    ;;
  *)
    usage
    ;;
esac
