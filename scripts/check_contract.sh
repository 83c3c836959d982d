#!/usr/bin/env bash
# The contract stays safe to change: buf lint (STANDARD, from protos/buf.yaml),
# buf format (no diff), and buf breaking (FILE rules) against the released
# contract.
#
#   scripts/check_contract.sh [--protos DIR] [--against INPUT | --against-ref REF]
#
#   --protos DIR      the module to check (default: protos)
#   --against INPUT   any buf input to compare with (default: the committed image
#                     of the last released contract, protos/released/sessiond-v1.binpb)
#   --against-ref REF compare with protos/ as of a git commit instead, e.g.
#                     `--against-ref "$(git merge-base HEAD origin/main)"`
#
# buf comes from npm (tools/node_modules/.bin/buf; `cd tools && npm install`),
# or from $BUF. Exit status: 0 when every check passes, 1 otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
buf="${BUF:-$root/tools/node_modules/.bin/buf}"
protos="$root/protos"
against="$root/protos/released/sessiond-v1.binpb"
ref=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --protos) protos="$(cd "$2" && pwd)"; shift 2 ;;
    --against) against="$2"; shift 2 ;;
    --against-ref) ref="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [[ ! -x "$buf" ]]; then
  echo "buf not found at $buf: run (cd tools && npm install)" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -n "$ref" ]]; then
  git -C "$root" archive "$ref" protos | tar -x -C "$work"
  "$buf" build "$work/protos" --exclude-source-info -o "$work/against.binpb"
  against="$work/against.binpb"
fi

failed=0
cd "$protos"
echo "== buf lint (STANDARD)"
"$buf" lint || failed=1
echo "== buf format"
"$buf" format --diff --exit-code || failed=1
echo "== buf breaking against ${ref:-$against}"
"$buf" breaking --against "$against" || failed=1
if [[ $failed -ne 0 ]]; then
  echo "contract check FAILED" >&2
  exit 1
fi
echo "contract check passed"
