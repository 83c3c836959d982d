#!/usr/bin/env bash
# Regenerates the committed Python stubs in client/sessiond/v1/ from protos/.
# `scripts/gen_protos.sh --check` fails when the committed stubs are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
out=client
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/sessiond/v1"
"$python" -m grpc_tools.protoc -Iprotos \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  protos/sessiond/v1/*.proto
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r -x __pycache__ -x '*.pyc' "$out/sessiond/v1" client/sessiond/v1; then
    echo "generated code in client/sessiond/v1 is stale: run scripts/gen_protos.sh" >&2
    exit 1
  fi
  echo "generated code is up to date"
fi
