#!/usr/bin/env bash
# Records the released contract that `scripts/check_contract.sh` compares with:
# builds protos/ as of a git commit or tag (default HEAD) into the image
# protos/released/sessiond-v1.binpb. Run it when tagging a release, and commit
# the image with the tag.
#
#   scripts/release_contract.sh [REF]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
buf="${BUF:-$root/tools/node_modules/.bin/buf}"
ref="${1:-HEAD}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive "$ref" protos | tar -x -C "$work"
mkdir -p "$root/protos/released"
"$buf" build "$work/protos" --exclude-source-info -o "$root/protos/released/sessiond-v1.binpb"
echo "protos/released/sessiond-v1.binpb: the contract of $(git -C "$root" rev-parse --short "$ref")"
