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

# Debian packages the tests and benchmarks use:
#   chromium + fonts-liberation  the HTML-report test renders a report in headless Chromium
#                                (without a font the report's text isn't drawn);
#   libonnx-testdata             ONNX's own backend test models with reference inputs (the zoo test);
#   python3-torch, python3-onnx  export the dynamic-axes fixture and the large benchmark models.
apt_missing=()
[ -x /usr/bin/chromium ] || apt_missing+=(chromium fonts-liberation)
[ -d /usr/share/libonnx-testdata/data ] || apt_missing+=(libonnx-testdata)
/usr/bin/python3 -c 'import torch, onnx' >/dev/null 2>&1 || apt_missing+=(python3-torch python3-onnx)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  else
    echo "setup: note: missing Debian packages ${apt_missing[*]}; the tests need them (run this script as root, or apt-get install them)" >&2
  fi
fi

# The Prisma client is generated code (not committed). The Prisma CLI wants to download a schema
# engine first, which fails offline; generating the client does not need it (see DEVELOPERS.md).
PRISMA_SCHEMA_ENGINE_BINARY=${PRISMA_SCHEMA_ENGINE_BINARY:-/bin/true} npx prisma generate >/dev/null

# The service tests need Postgres and Redis (existing ones via DATABASE_URL/REDIS_URL, else local ones).
DATABASE_URL=${TEST_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres} REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379} \
  bash scripts/services.sh
