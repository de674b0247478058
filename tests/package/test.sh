#!/usr/bin/env bash
# TAP: the Debian package as a DBA meets it (`make package-test`, run by `make test`). Builds
# this version's package and the previous release's (from its source archive under
# tests/package/releases: a CI clone may have neither tags nor history), removes the
# development install from the system Postgres 15, then with no cargo on the PATH: installs
# the previous package, creates the extension in a fresh cluster with shared_preload_libraries,
# upgrades to this package, updates the extension, runs a smoke test (vault round trip, a
# render, an email sent by the background worker to the emulator), checks the package's file
# list against the README and lintian's findings against the README, removes the package
# cleanly; and finally puts the development install back.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
export PATH="$HOME/.cargo/bin:$PATH"
NAME=postgresql-15-crm-integrations
OUT=$PWD/target/package
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# the newest released version (an archived source, scripts/release-source.sh) other than this one
PREV=$(ls tests/package/releases | sed -n 's/^crm_integrations-\(.*\)-src\.tar\.xz$/\1/p' | grep -vxF "$VERSION" | sort -V | tail -1)
SYS_LIB=/usr/lib/postgresql/15/lib
SYS_EXT=/usr/share/postgresql/15/extension
NOCARGO="env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLUSTER=pkgtest
PORT=${CRM_PACKAGE_TEST_PORT:-55437}
echo "1..11"

# --- the packages ---------------------------------------------------------------------------
work=$(mktemp -d)
# nothing left from an earlier run may pass for this run's packages
rm -f "$OUT"/*.deb "$OUT"/*.tar.gz
bash scripts/package.sh . "$OUT" >/dev/null
mkdir -p "$work/prev"
tar -C "$work/prev" -xJf "tests/package/releases/crm_integrations-$PREV-src.tar.xz"
# the fonts are not in the archive: this tree's, when they are the released ones
mkdir -p "$work/prev/core/assets/fonts" && cp -a core/assets/fonts/. "$work/prev/core/assets/fonts/"
(cd "$work/prev" && sha256sum --quiet -c "$OLDPWD/tests/package/releases/crm_integrations-$PREV-fonts.sha256") ||
  echo "# the fonts changed since $PREV: its package is built with the new ones"
# its own target directory: sharing this tree's let cargo hand one version's schema generator
# to the other (the library file names are the same)
CARGO_TARGET_DIR=$PWD/target/package-prev bash scripts/package.sh "$work/prev" "$OUT" >/dev/null
DEB_PREV=$OUT/${NAME}_${PREV}_amd64.deb
DEB=$OUT/${NAME}_${VERSION}_amd64.deb
TARBALL=$OUT/crm_integrations-$VERSION-pg15-amd64.tar.gz
check "$([ -f "$DEB_PREV" ] && [ -f "$DEB" ] && [ -f "$TARBALL" ] && echo built)" "built" \
  "make package: $(basename "$DEB"), the previous release's ($PREV) and the tarball"
check "$(dpkg-deb -f "$DEB" Package Version Architecture Depends | tr '\n' ';')$(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/postgresql/15/extension/crm_integrations--$VERSION.sql | diff -q - "$SYS_EXT/crm_integrations--$VERSION.sql" >/dev/null || echo ' install script differs from this build')" \
  "Package: $NAME;Version: $VERSION;Architecture: amd64;Depends: postgresql-15, libc6 (>= 2.34), libgcc-s1;" \
  "the control file: the extension's version, a dependency on postgresql-15"
# the README names every file of the package (between its package-files markers)
listed=$(sed -n '/<!-- package-files:start -->/,/<!-- package-files:end -->/p' README.md | grep -o '/usr/[^ `]*' | sed "s/<version>/$VERSION/g" | sort)
packaged=$(dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ {print $6}' | sed 's/^\.//' | sort)
check "$packaged" "$listed" "dpkg -c lists exactly the files the README names"
check "$(tar -tzf "$TARBALL" | grep -v '/$' | sed 's/^/\//' | sort)" "$packaged" "the tarball holds the same files"
if command -v lintian >/dev/null; then
  tags=$(lintian --tag-display-limit 0 "$DEB" 2>/dev/null | awk '/^[EWIPX]: /{print $3}' | sort -u)
  unexplained=$(for t in $tags; do grep -q "\`$t\`" README.md || echo "$t"; done)
  check "$unexplained" "" "every lintian finding (${tags:-none}) is listed and explained in the README"
else
  check "lintian missing" "lintian missing" "# SKIP lintian is not installed"
fi

# --- installed from the package, without cargo --------------------------------------------------
save=$(mktemp -d)
cp -a "$SYS_LIB"/crm_integrations.so "$SYS_EXT"/crm_integrations* "$save"/ 2>/dev/null
start_emulator "${CRM_EMULATOR_PORT_PACKAGE:-18065}"
restore() {
  bash scripts/cluster.sh stop $CLUSTER >/dev/null 2>&1
  $NOCARGO dpkg -r $NAME >/dev/null 2>&1
  cp -a "$save"/crm_integrations.so "$SYS_LIB"/ 2>/dev/null
  cp -a "$save"/crm_integrations*.sql "$save"/crm_integrations.control "$SYS_EXT"/ 2>/dev/null
  kill $emu_pid 2>/dev/null
  rm -rf "$save" "$work"
}
trap restore EXIT
rm -f "$SYS_LIB"/crm_integrations.so "$SYS_EXT"/crm_integrations*
check "$($NOCARGO sh -c 'command -v cargo || echo none')/$(ls "$SYS_EXT" | grep -c crm_integrations)" "none/0" \
  "a clean Postgres 15: no crm_integrations files, and no cargo on the PATH of what follows"
$NOCARGO dpkg -i "$DEB_PREV" >/dev/null
bash scripts/cluster.sh start $CLUSTER "$PORT" "shared_preload_libraries = 'crm_integrations'" \
  "crm.worker_database = 'crm_pkg'" "crm.resend_base_url = '$EMU'" "crm.resend_api_key = 're_package'" \
  "crm.resend_rate_limit = 0" >/dev/null
eval "$(bash scripts/cluster.sh env $CLUSTER "$PORT")"
export PGHOST PGPORT PGUSER
DB=crm_pkg
psql -X -q -d postgres -c "CREATE DATABASE crm_pkg"
q -c "CREATE EXTENSION crm_integrations" -c "INSERT INTO crm.accounts (id, name) VALUES ('00000018-0000-0000-0000-000000000001', 'Packaged')" >/dev/null
check "$(dpkg-query -W -f '${Status} ${Version}' $NAME)/$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_integrations'")" \
  "install ok installed $PREV/$PREV" "dpkg -i the previous release: CREATE EXTENSION gives $PREV"
$NOCARGO dpkg -i "$DEB" >/dev/null
# the new library is loaded at the next start (it is preloaded)
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "${CRM_CLUSTER_BASE:-/tmp/crm_integrations}/$CLUSTER/data" \
  -l "${CRM_CLUSTER_BASE:-/tmp/crm_integrations}/$CLUSTER/server.log" -w -t 60 -m fast restart >/dev/null || echo "# pg_ctl restart failed"
updated=$(q -c "ALTER EXTENSION crm_integrations UPDATE" 2>&1)
[ -z "$updated" ] || echo "# ALTER EXTENSION said: $updated"
check "$(dpkg-query -W -f '${Status} ${Version}' $NAME)/$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_integrations'")" \
  "install ok installed $VERSION/$VERSION" "dpkg -i this package over it, restart, ALTER EXTENSION ... UPDATE: $VERSION"
check "$(q -c "SELECT crm.decrypt_token(crm.encrypt_token('ya29.packaged')) || ' ' || crm.render_template('Hi {{name}}', '{\"name\": \"Ana\"}')")" \
  "ya29.packaged Hi Ana" "smoke: the vault round trip and a template render"
q -c "SELECT crm.enqueue_email('{\"account_id\": \"00000018-0000-0000-0000-000000000001\", \"to\": \"dba@example.com\", \"subject\": \"Packaged\", \"text\": \"It works\"}')" >/dev/null
for _ in $(seq 100); do [ "$(q -c "SELECT status FROM crm.email_queue")" = sent ] && break; sleep 0.2; done
check "$(q -c "SELECT status FROM crm.email_queue")/$(requests | jq_ "[r['body']['subject'] for r in d if r['path'] == '/emails']")" "sent/['Packaged']" \
  "smoke: an email queued is sent by the preloaded background worker (emulator)"
bash scripts/cluster.sh stop $CLUSTER >/dev/null 2>&1
$NOCARGO dpkg -r $NAME >/dev/null
check "$(dpkg-query -W -f '${Status}' $NAME 2>/dev/null | grep -c 'install ok installed')/$(ls "$SYS_LIB" "$SYS_EXT" | grep -c crm_integrations)" "0/0" \
  "dpkg -r removes the package and every file it installed"
exit $failed
