#!/usr/bin/env bash
# Regenerates the committed TypeScript of the Node client (client/node/src/gen/)
# from protos/ with protobuf-es (protoc-gen-es, from client/node/node_modules),
# driven by buf (tools/node_modules). `scripts/gen_node.sh --check` fails when
# the committed code is stale. Needs `npm install` in tools/ and client/node/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
buf="$root/tools/node_modules/.bin/buf"
cd "$root/client/node"
for tool in "$buf" node_modules/.bin/protoc-gen-es; do
  if [[ ! -x "$tool" ]]; then
    echo "missing $tool: run npm install in tools/ and client/node/" >&2
    exit 2
  fi
done
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  "$buf" generate --template buf.gen.yaml -o "$out"
  if ! diff -r "$out/src/gen" src/gen; then
    echo "generated code in client/node/src/gen is stale: run scripts/gen_node.sh" >&2
    exit 1
  fi
  echo "generated TypeScript is up to date"
else
  rm -rf src/gen
  "$buf" generate --template buf.gen.yaml
fi
