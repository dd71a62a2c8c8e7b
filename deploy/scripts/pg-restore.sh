#!/usr/bin/env bash
# Restore a backup made by pg-backup.sh into an empty database and prove it complete: the
# archive's SHA-256 is checked before anything is written, and the restore commits only if,
# inside its one transaction, every table's row count equals the count recorded in the
# backup's snapshot; otherwise nothing is written.
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

# 3. Restore and prove it complete in one transaction: the archive's SQL, then a check
# that every table's row count equals the one recorded in the backup's snapshot (and that
# no table is missing or extra). Any error or difference rolls everything back, so the
# target is either a verified copy or as empty as it was.
# The counts become SQL literals: a line that is not `schema.table<TAB>digits` is refused.
expected_values="$(awk -F'\t' 'NF != 2 || $2 !~ /^[0-9]+$/ { bad = 1; exit 1 } {
    gsub(/\047/, "\047\047", $1);
    printf "%s(\047%s\047, %s)", (n++ ? ",\n" : ""), $1, $2 }' "$dir/$name.counts")" \
  || die "$dir/$name.counts is malformed"
echo "pg-restore: restoring $base into $(redact "$url")" >&2
restore_sql() {
  echo 'BEGIN;'
  # Never reach COMMIT after a failed pg_restore (errexit does not apply under `if !`).
  pg_restore --no-owner --no-privileges --file=- "$dump" || return 1
  echo 'CREATE TEMP TABLE pg_restore_expected (tbl text PRIMARY KEY, n bigint NOT NULL) ON COMMIT DROP;'
  if [[ -n "$expected_values" ]]; then
    printf 'INSERT INTO pg_restore_expected VALUES\n%s;\n' "$expected_values"
  fi
  cat <<'SQL'
DO $check$
DECLARE
  t record;
  actual bigint;
  expected bigint;
  diffs text := '';
BEGIN
  FOR t IN
    SELECT n.nspname AS s, c.relname AS r
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  LOOP
    EXECUTE format('SELECT count(*) FROM %I.%I', t.s, t.r) INTO actual;
    SELECT e.n INTO expected FROM pg_restore_expected e WHERE e.tbl = t.s || '.' || t.r;
    IF expected IS DISTINCT FROM actual THEN
      diffs := diffs || format(E'\n  %s.%s: backup %s, restored %s', t.s, t.r,
                               coalesce(expected::text, 'absent'), actual);
    END IF;
  END LOOP;
  SELECT diffs || coalesce(string_agg(format(E'\n  %s: backup %s, restored absent', e.tbl, e.n), ''), '')
    INTO diffs
    FROM pg_restore_expected e
   WHERE NOT EXISTS (
     SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname || '.' || c.relname = e.tbl AND c.relkind IN ('r', 'p'));
  IF diffs <> '' THEN
    RAISE EXCEPTION 'row counts differ from the backup''s:%', diffs;
  END IF;
END
$check$;
SQL
  echo 'COMMIT;'
}
# pipefail: a failing pg_restore fails the pipeline too (and psql, reaching the end of its
# input inside the open transaction, rolls it back).
if ! restore_sql | psql "$url" -X -q -v ON_ERROR_STOP=1 >/dev/null; then
  die "restore rolled back: the target is unchanged (see the error above)"
fi
psql "$url" -X -q -v ON_ERROR_STOP=1 -c 'ANALYZE' >/dev/null
tables="$(grep -c . "$dir/$name.counts" || true)"
rows="$(awk -F'\t' '{s += $2} END {print s + 0}' "$dir/$name.counts")"
echo "pg-restore: restored $tables tables, $rows rows; every table's row count matches the backup" >&2
