#!/usr/bin/env bash
# `make package`: the extension as a Debian package for PostgreSQL 15 and a plain tarball of the
# same files, for a DBA who installs it without a Rust toolchain.
#
#   scripts/package.sh [SOURCE_DIR] [OUT_DIR]
#
# SOURCE_DIR (default: this checkout) may be another version's tree (tests/package/test.sh
# packages the previous release from its archived source). Writes to OUT_DIR (default target/package):
#   postgresql-15-crm-integrations_<version>_amd64.deb
#   crm_integrations-<version>-pg15-amd64.tar.gz       (usr/..., the .deb's files)
# The package version is the extension version (Cargo.toml). The library is a release build
# (`cargo pgrx package`); the install script is pgrx's; update scripts are the frozen ones under
# sql/upgrades/ and the one to this version generated from its reviewed schema changes, as
# scripts/install.sh does.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SRC=$(cd "${1:-$HERE}" && pwd)
OUT=$(mkdir -p "${2:-$HERE/target/package}" && cd "${2:-$HERE/target/package}" && pwd)
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
export PATH="$HOME/.cargo/bin:$PATH"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SRC/Cargo.toml" | head -1)
NAME=postgresql-15-crm-integrations
ROOT=$OUT/root-$VERSION
EXT=usr/share/postgresql/15/extension
DOC=usr/share/doc/$NAME

rm -rf "$ROOT"
mkdir -p "$ROOT"
# The crate itself is always rebuilt: a schema generator left in the target directory by another
# tree's build (the same file name) would otherwise write that version's install script.
(cd "$SRC" && cargo clean --release -p crm_integrations --quiet && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$ROOT" >/dev/null)
# cargo pgrx package writes the library and the install script under the paths pg_config
# names (/usr/lib/postgresql/15/lib, /usr/share/postgresql/15/extension).
test -f "$ROOT/usr/lib/postgresql/15/lib/crm_integrations.so"
test -f "$ROOT/$EXT/crm_integrations--$VERSION.sql"
for f in "$SRC"/sql/upgrades/crm_integrations--*--*.sql; do
  case "$f" in
    *.schema.sql)
      out=$(basename "$f" .schema.sql).sql
      python3 "$SRC/scripts/gen_update.py" "$ROOT/$EXT/crm_integrations--$VERSION.sql" "$f" "$SRC/sql/security.sql" "$ROOT/$EXT/$out" ;;
    *) install -m 644 "$f" "$ROOT/$EXT/" ;;
  esac
done
strip --strip-unneeded "$ROOT/usr/lib/postgresql/15/lib/crm_integrations.so"
chmod 644 "$ROOT/usr/lib/postgresql/15/lib/crm_integrations.so"

# Documentation Debian expects of every package: the copyright (MIT) and the changelog.
mkdir -p "$ROOT/$DOC"
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: crm_integrations"
  echo
  echo "Files: *"
  echo "Copyright: 2026 crm_integrations maintainers"
  echo "License: MIT"
  echo " Permission is hereby granted, free of charge, to any person obtaining a copy of this"
  echo " software and associated documentation files, to deal in the Software without"
  echo " restriction, subject to the MIT license's conditions."
} > "$ROOT/$DOC/copyright"
# upstream's changes (CHANGELOG.md), and a Debian changelog pointing at them
if [ -f "$SRC/CHANGELOG.md" ]; then
  gzip -9n < "$SRC/CHANGELOG.md" > "$ROOT/$DOC/CHANGELOG.md.gz"
fi
{
  echo "$NAME ($VERSION) unstable; urgency=medium"
  echo
  echo "  * crm_integrations $VERSION: see CHANGELOG.md.gz for its changes and update path."
  echo
  echo " -- crm_integrations maintainers <maintainers@crm-integrations.invalid>  $(date -u -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n > "$ROOT/$DOC/changelog.gz"
find "$ROOT/usr" -type d -exec chmod 755 {} +
find "$ROOT/usr" -type f ! -name '*.so' -exec chmod 644 {} +

# The tarball: the same files, for systems without dpkg (extract at /).
tar -C "$ROOT" --owner=0 --group=0 --sort=name -czf "$OUT/crm_integrations-$VERSION-pg15-amd64.tar.gz" usr

mkdir -p "$ROOT/DEBIAN"
cat > "$ROOT/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Architecture: amd64
Maintainer: crm_integrations maintainers <maintainers@crm-integrations.invalid>
Depends: postgresql-15, libc6 (>= 2.34), libgcc-s1
Section: database
Priority: optional
Installed-Size: $(du -sk "$ROOT/usr" | cut -f1)
Description: field-service CRM integrations inside PostgreSQL 15
 crm_integrations puts a field-service CRM's third-party integrations in the
 database: an OAuth token vault, email templates, an email queue sent by
 background workers (Resend, Gmail, Microsoft 365, SMTP), Stripe and Resend
 webhooks, Google Calendar, Maps and contact sync, Stripe payments and the
 voice agent's tools. Add crm_integrations to shared_preload_libraries, then
 CREATE EXTENSION crm_integrations.
EOF
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$OUT/${NAME}_${VERSION}_amd64.deb" >/dev/null
rm -rf "$ROOT"
echo "$OUT/${NAME}_${VERSION}_amd64.deb"
echo "$OUT/crm_integrations-$VERSION-pg15-amd64.tar.gz"
