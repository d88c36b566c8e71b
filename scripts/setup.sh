#!/usr/bin/env bash
# Installs everything modelpress needs on a fresh Debian machine (run as root for apt installs).
set -euo pipefail
cd "$(dirname "$0")/.."

need_node_major=20
if ! command -v node >/dev/null 2>&1; then
  echo "setup: Node.js >= ${need_node_major} is required (https://nodejs.org or your distribution)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt "$need_node_major" ]; then
  echo "setup: Node.js >= ${need_node_major} is required, found $(node --version)" >&2
  exit 1
fi

# onnxruntime-node's postinstall tries to download a CUDA provider; the CPU binary ships in the package.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
