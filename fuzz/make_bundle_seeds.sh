#!/bin/sh
# Writes seeds/bundle_files/: real bundles built and packed by `daemoneye-bundler build`
# (lib's `bundle::pack`), signed with the committed TEST key, and the hostile bundles of
# tests/fixtures/bundles/attacks/. Each seed is the target's input: a flags byte, the
# manifest's length (16 bits, little-endian), the manifest (extracted with zstd and tar; empty
# when the bundle has none to extract), then the bundle file. See fuzz_targets/bundle_files.rs.
#
# Usage, from fuzz/: ./make_bundle_seeds.sh PATH/TO/daemoneye-bundler
# Deterministic: the bundler's output depends on the sources and the key only.
set -eu
bundler=${1:?usage: $0 PATH/TO/daemoneye-bundler}
root=$(cd .. && pwd)
out=seeds/bundle_files
key=$root/tests/fixtures/keys/test-bundle.key
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# A small rules bundle (one rule, two fixtures) and a license bundle for plant-7.
mkdir -p "$work/small-rules/rules" "$work/plant-7-license/license"
cat > "$work/small-rules/bundle.toml" <<'TOML'
name = "small-rules"
kind = "rules"
version = 2
created = "2027-01-01T00:00:00Z"
expires = "2028-01-01T00:00:00Z"
sites = ["plant-7"]
min_agent_version = "0.1.0"
TOML
cat > "$work/small-rules/rules/nc.toml" <<'TOML'
[[rule]]
id = "T-1"
name = "nc"
severity = "high"
mitre = ["T1059"]
description = "a test rule"
sql = "SELECT pid, name FROM processes WHERE name = 'nc'"

[[rule.test]]
processes = [{ pid = 1, name = "nc" }]
expect_rows = 1

[[rule.test]]
processes = [{ pid = 1, name = "sh" }]
expect_rows = 0
TOML
cat > "$work/plant-7-license/bundle.toml" <<'TOML'
name = "plant-7-license"
kind = "license"
version = 1
created = "2027-01-01T00:00:00Z"
expires = "2028-01-01T00:00:00Z"
sites = ["plant-7"]
min_agent_version = "0.1.0"
TOML
cat > "$work/plant-7-license/license/license.toml" <<'TOML'
site = "plant-7"
tier = "business"
features = ["splunk_hec"]
issued = "2027-01-01T00:00:00Z"
expires = "2028-01-01T00:00:00Z"
TOML

# seed NAME FLAGS BUNDLE
seed() {
    manifest=$(mktemp -p "$work")
    zstd -qdc "$3" 2>/dev/null | tar -xOf - manifest.toml > "$manifest" 2>/dev/null || : > "$manifest"
    python3 - "$out/$1.bin" "$2" "$manifest" "$3" <<'PY'
import sys
out, flags, manifest, bundle = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = open(manifest, "rb").read()[:0xFFFF]
b = open(bundle, "rb").read()
open(out, "wb").write(bytes([flags]) + len(m).to_bytes(2, "little") + m + b)
PY
    echo "$out/$1.bin"
}

for src in "$root/bundles/core-rules" "$root/bundles/examples/site-config" \
        "$root/bundles/examples/keys-rotation" "$work/small-rules" "$work/plant-7-license"; do
    name=$(basename "$src")
    mkdir -p "$work/out-$name"
    "$bundler" build --key "$key" --out "$work/out-$name" "$src" > /dev/null
    # License bundles need the key trusted for licenses (flag bit 2).
    flags=0
    [ "$name" = plant-7-license ] && flags=4
    seed "real-$name" "$flags" "$work/out-$name"/*.bundle
done
for dir in "$root"/tests/fixtures/bundles/attacks/*/; do
    seed "attack-$(basename "$dir")" 0 "$dir"/*.bundle
done
