#!/usr/bin/env bash
# Archive a released version's source for the package test (tests/package/test.sh), which builds
# the previous release's package to test the update from it. The test cannot take that source
# from git: a CI checkout may be shallow and carry no tags. So each release's buildable source
# is kept as a fixture, made once at release time:
#
#   scripts/release-source.sh v0.5.0
#
# writes tests/package/releases/crm_integrations-<version>-src.tar.xz (what `cargo pgrx package`
# needs: the crate, the core crate, the SQL and its update-script generator). The fonts (1.4 MB, unchanged since they were added)
# are left out and taken from the current tree, checked against the digests written beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:?usage: scripts/release-source.sh vX.Y.Z}
VERSION=${TAG#v}
OUT=tests/package/releases
git archive --format=tar "$TAG" Cargo.toml Cargo.lock crm_integrations.control src core sql scripts/gen_update.py ':!core/assets/fonts' |
  xz -9e > "$OUT/crm_integrations-$VERSION-src.tar.xz"
git ls-tree -r "$TAG" core/assets/fonts | while read -r _ _ blob path; do
  printf '%s  %s\n' "$(git cat-file blob "$blob" | sha256sum | cut -d' ' -f1)" "$path"
done > "$OUT/crm_integrations-$VERSION-fonts.sha256"
echo "$OUT/crm_integrations-$VERSION-src.tar.xz"
