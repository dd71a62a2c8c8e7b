#!/usr/bin/env bash
# Restore a backup made by pg-backup.sh into an empty database, then prove it complete:
# the archive's SHA-256 is checked before anything is written, the restore runs in one
# transaction (all or nothing), and afterwards every table's row count must equal the
# count recorded in the backup's snapshot.
#
# Usage: pg-restore.sh [-d TARGET_URL] -f BACKUP.dump [-c]
#   -d  connection URL of the target database (default: $DATABASE_URL); it must exist
#       and hold no tables (create it first: createdb, or CREATE DATABASE)
#   -f  the .dump written by pg-backup.sh (NAME.dump.sha256 and NAME.counts beside it)
#   -c  create the target database first (connects to its server's `postgres` database)
# Objects are restored without their original owners and grants (--no-owner
# --no-privileges): the target's connecting role owns them. Run `advancia migrate`
# afterwards only when restoring into a newer release.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "pg-restore: $*" >&2; exit 1; }
redact() { sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

url="${DATABASE_URL:-}"
dump=""
create=0
while getopts "d:f:ch" opt; do
  case "$opt" in
    d) url="$OPTARG" ;;
    f) dump="$OPTARG" ;;
    c) create=1 ;;
    *) usage ;;
  esac
done
[[ -n "$url" ]] || die "no target: pass -d URL or set DATABASE_URL"
[[ -n "$dump" ]] || usage
for tool in pg_restore psql sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found (install postgresql-client / coreutils)"
done
[[ -f "$dump" ]] || die "$dump: no such file"
dir="$(cd "$(dirname "$dump")" && pwd)"
base="$(basename "$dump")"
name="${base%.dump}"
[[ -f "$dir/$base.sha256" ]] || die "$dir/$base.sha256 missing: refusing an unverifiable archive"
[[ -f "$dir/$name.counts" ]] || die "$dir/$name.counts missing"

# 1. Integrity: the archive and the counts are the files the backup wrote.
(cd "$dir" && sha256sum --check --strict --quiet "$base.sha256") \
  || die "checksum mismatch for $dump: the archive is damaged or was altered"
pg_restore --list "$dump" >/dev/null || die "$dump is not a readable pg_dump archive"

# 2. Target: created on request, and empty.
if [[ "$create" == 1 ]]; then
  target_db="$(sed -E 's#^[^/]*//[^/]*/([^?]*).*#\1#' <<<"$url")"
  [[ "$target_db" =~ ^[A-Za-z0-9_]+$ ]] || die "cannot take a database name from the target URL"
  admin_url="$(sed -E 's#^([^/]*//[^/]*/)[^?]*#\1postgres#' <<<"$url")"
  psql "$admin_url" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$target_db\"" \
    || die "could not create database $target_db"
fi
existing="$(psql "$url" -X -A -t -v ON_ERROR_STOP=1 -c "
  SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname NOT LIKE 'pg\\_toast%'")" || die "cannot connect to $(redact "$url")"
[[ "$existing" == 0 ]] || die "target $(redact "$url") already has $existing tables: restore into an empty database"

# 3. Restore in one transaction: a failure leaves the target as empty as it was.
echo "pg-restore: restoring $base into $(redact "$url")" >&2
pg_restore --dbname="$url" --no-owner --no-privileges --exit-on-error --single-transaction "$dump"
psql "$url" -X -q -v ON_ERROR_STOP=1 -c 'ANALYZE' >/dev/null

# 4. Completeness: every table's rows, against the counts taken with the dump.
restored="$(mktemp)"
trap 'rm -f "$restored"' EXIT
psql "$url" -X -q -A -t -F $'\t' -v ON_ERROR_STOP=1 <<'SQL' | sort >"$restored"
SELECT format('SELECT %L, count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
 ORDER BY 1 \gexec
SQL
if ! diff <(sort "$dir/$name.counts") "$restored" >&2; then
  die "row counts differ from the backup's (< backup, > restored)"
fi
tables="$(wc -l <"$restored")"
rows="$(awk -F'\t' '{s += $2} END {print s + 0}' "$restored")"
echo "pg-restore: restored $tables tables, $rows rows; counts match the backup" >&2
