#!/usr/bin/env bash
# Back up one Advancia Postgres database: a pg_dump custom-format archive, its SHA-256, and
# the row count of every table taken in the same snapshot as the dump, so pg-restore.sh
# can prove a restore complete without access to the source database.
#
# Usage: pg-backup.sh [-d DATABASE_URL] -o OUT_DIR [-n NAME]
#   -d  connection URL of the database to back up (default: $DATABASE_URL)
#   -o  directory for the backup files (created if missing)
#   -n  base name of the files (default: <database>-<UTC timestamp>)
# Writes OUT_DIR/NAME.dump, NAME.dump.sha256 (sha256sum format) and NAME.counts
# (schema.table<TAB>rows), and prints the path of the .dump on stdout.
# Needs pg_dump and psql of the server's major version or newer (postgresql-client).
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "pg-backup: $*" >&2; exit 1; }
# Never print a password: user:secret@host -> user:***@host.
redact() { sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

url="${DATABASE_URL:-}"
out=""
name=""
while getopts "d:o:n:h" opt; do
  case "$opt" in
    d) url="$OPTARG" ;;
    o) out="$OPTARG" ;;
    n) name="$OPTARG" ;;
    *) usage ;;
  esac
done
[[ -n "$url" ]] || die "no database: pass -d URL or set DATABASE_URL"
[[ -n "$out" ]] || usage
for tool in pg_dump psql sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found (install postgresql-client / coreutils)"
done

db="$(psql "$url" -X -A -t -v ON_ERROR_STOP=1 -c 'SELECT current_database()')" \
  || die "cannot connect to $(redact "$url")"
name="${name:-${db}-$(date -u +%Y%m%dT%H%M%SZ)}"
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad backup name: $name"
mkdir -p "$out"
dump="$out/$name.dump"
[[ ! -e "$dump" ]] || die "$dump already exists"
tmp="$(mktemp -d)"
psql_pid=""
trap 'rm -rf "$tmp"; [[ -n "$psql_pid" ]] && kill "$psql_pid" 2>/dev/null || true' EXIT

# One psql session holds a repeatable-read transaction open and exports its snapshot:
# pg_dump reads that snapshot, and the row counts are taken in it too.
coproc PSQL { psql "$url" -X -q -A -t -F $'\t' -v ON_ERROR_STOP=1 2>&1; }
# Bash unsets PSQL and PSQL_PID as soon as the coprocess exits: keep our own copies.
# shellcheck disable=SC2153 # PSQL_PID is set by `coproc PSQL`
psql_pid="${PSQL_PID:?psql exited at once}"
exec {to_psql}>&"${PSQL[1]}" {from_psql}<&"${PSQL[0]}"
printf '%s\n' \
  'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' \
  'SELECT pg_export_snapshot();' >&"$to_psql"
IFS= read -r -t 30 snapshot <&"$from_psql" || die "could not export a snapshot"
[[ "$snapshot" =~ ^[0-9A-F-]+$ ]] || die "could not export a snapshot: $snapshot"

echo "pg-backup: dumping $db from $(redact "$url") (snapshot $snapshot)" >&2
pg_dump --dbname="$url" --format=custom --compress=6 --snapshot="$snapshot" \
  --file="$tmp/backup.dump"

# Every ordinary and partitioned table outside the system schemas, counted in the snapshot.
printf '%s\n' \
  "SELECT format('SELECT %L, count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    ORDER BY 1 \\gexec" \
  '\echo __counts_done__' \
  'COMMIT;' \
  '\echo __committed__' >&"$to_psql"
: >"$tmp/backup.counts"
while IFS= read -r -t 300 line <&"$from_psql"; do
  [[ "$line" == "__counts_done__" ]] && break
  [[ "$line" == *$'\t'* ]] || die "counting rows: $line"
  printf '%s\n' "$line" >>"$tmp/backup.counts"
done
[[ "${line:-}" == "__counts_done__" ]] || die "counting rows did not finish"
# ON_ERROR_STOP: psql echoes the marker only if COMMIT went through.
IFS= read -r -t 60 line <&"$from_psql" && [[ "$line" == "__committed__" ]] \
  || die "the snapshot transaction did not end cleanly: ${line:-no answer}"
printf '%s\n' '\q' >&"$to_psql"
exec {to_psql}>&- {from_psql}<&-
wait "$psql_pid" 2>/dev/null || true # already reaped by bash if it exited first
psql_pid=""
sort -o "$tmp/backup.counts" "$tmp/backup.counts"

mv "$tmp/backup.dump" "$dump"
mv "$tmp/backup.counts" "$out/$name.counts"
(cd "$out" && sha256sum "$name.dump" "$name.counts" >"$name.dump.sha256")
tables="$(wc -l <"$out/$name.counts")"
rows="$(awk -F'\t' '{s += $2} END {print s + 0}' "$out/$name.counts")"
echo "pg-backup: wrote $dump ($(stat -c %s "$dump") bytes, $tables tables, $rows rows)" >&2
echo "$dump"
