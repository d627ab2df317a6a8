#!/usr/bin/env bash
# Usage: scripts/with-postgres.sh CMD [ARGS...]
#
# Starts a throwaway PostgreSQL cluster (trust auth, superuser role "mlcrew",
# listening on 127.0.0.1 only), runs CMD with
#   MLCREW_TEST_PG_URL=postgresql://mlcrew@127.0.0.1:PORT/postgres
# exported, then stops the cluster and deletes its files (also on failure or
# Ctrl-C). Exits with CMD's exit code.
#
# If MLCREW_TEST_PG_URL is already set, CMD is simply run against that server.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if [ -n "${MLCREW_TEST_PG_URL:-}" ]; then
    echo "with-postgres: using existing MLCREW_TEST_PG_URL, not starting a server" >&2
    exec "$@"
fi

# --- find the PostgreSQL binaries (highest installed version first) ---------
PGBIN=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        PGBIN="$d"
        break
    fi
done
if [ -z "$PGBIN" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    PGBIN="$(dirname "$(command -v initdb)")"
fi
if [ -z "$PGBIN" ]; then
    echo "with-postgres: initdb/pg_ctl not found (install PostgreSQL, e.g. 'make system-deps')" >&2
    exit 1
fi

# --- PostgreSQL refuses to run as root: use the "postgres" account then ------
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        echo "with-postgres: running as root but there is no 'postgres' user" >&2
        exit 1
    fi
    PG_OWNER=postgres
    BASE_TMP=/tmp  # must be reachable by the postgres user
else
    PG_OWNER=""
    BASE_TMP="${TMPDIR:-/tmp}"
fi

as_pg() {
    # Run a command as the cluster owner, from a directory it can read.
    if [ -z "$PG_OWNER" ]; then
        (cd "$PGTMP" && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd "$PGTMP" && runuser -u "$PG_OWNER" -- "$@")
    else
        (cd "$PGTMP" && su "$PG_OWNER" -s /bin/sh -c "$(printf '%q ' "$@")")
    fi
}

PGTMP="$(mktemp -d "$BASE_TMP/mlcrew-pg.XXXXXX")"
DATADIR="$PGTMP/data"
SOCKDIR="$PGTMP/sock"
LOGFILE="$PGTMP/postgres.log"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -f "$DATADIR/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$DATADIR" stop -m fast -w -t 60 >/dev/null 2>&1 \
            || echo "with-postgres: warning: pg_ctl stop failed (see $LOGFILE)" >&2
    fi
    if [ -f "$DATADIR/postmaster.pid" ]; then
        # Server did not go away; keep the files so nothing is deleted under it.
        echo "with-postgres: warning: server still running, leaving $PGTMP" >&2
    else
        rm -rf "$PGTMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$SOCKDIR"
if [ -n "$PG_OWNER" ]; then
    chown -R "$PG_OWNER": "$PGTMP"
fi
chmod 700 "$PGTMP"

if ! as_pg "$PGBIN/initdb" -D "$DATADIR" --auth=trust --username=mlcrew \
        --encoding=UTF8 --locale=C >"$PGTMP/initdb.log" 2>&1; then
    echo "with-postgres: initdb failed:" >&2
    cat "$PGTMP/initdb.log" >&2
    exit 1
fi

# Trust only the private unix socket and TCP from 127.0.0.1.
as_pg sh -c "cat > '$DATADIR/pg_hba.conf'" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Retry with a new port in the unlikely case another process grabs it first.
started=0
for _attempt in 1 2 3; do
    PORT="$(free_port)"
    if as_pg "$PGBIN/pg_ctl" -D "$DATADIR" -l "$LOGFILE" -w -t 60 start \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKDIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            >/dev/null 2>&1; then
        started=1
        break
    fi
    if ! grep -q "could not bind" "$LOGFILE" 2>/dev/null; then
        break
    fi
done
if [ "$started" -ne 1 ]; then
    echo "with-postgres: PostgreSQL failed to start; server log ($LOGFILE):" >&2
    cat "$LOGFILE" >&2 2>/dev/null || true
    exit 1
fi

export MLCREW_TEST_PG_URL="postgresql://mlcrew@127.0.0.1:$PORT/postgres"
echo "with-postgres: PostgreSQL ($("$PGBIN/pg_ctl" --version | awk '{print $3}')) listening on 127.0.0.1:$PORT, data in $PGTMP" >&2

set +e
"$@"
rc=$?
set -e
exit "$rc"
