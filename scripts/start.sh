#!/usr/bin/env bash
# `npm start`: Postgres + Redis (existing or local), build, migrate, then the API on $PORT and one worker.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip
[ -d node_modules ] || npm ci --no-audit --no-fund
source scripts/services.sh
if [ ! -f dist/src/cli/main.js ] || [ -n "$(find src prisma -newer dist/src/cli/main.js -type f -print -quit)" ]; then
  npm run build --silent
fi
: "${PORT:=8080}"
: "${MODELPRESS_DATA_DIR:=$PWD/data}"
export PORT MODELPRESS_DATA_DIR
node dist/src/cli/main.js migrate
KEY=$(node dist/src/cli/main.js keys create "dev-$(date +%s)" 2>/dev/null | tail -1)

node dist/src/cli/main.js worker &
WORKER=$!
node dist/src/cli/main.js serve &
API=$!
trap 'kill -TERM $API $WORKER 2>/dev/null; wait $API $WORKER 2>/dev/null' INT TERM
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
cat <<MSG

  modelpress is running
    API docs:    http://localhost:$PORT/docs   (OpenAPI: /openapi.json)
    dev API key: $KEY
    try:         curl -H "Authorization: Bearer $KEY" http://localhost:$PORT/v1/jobs

MSG
wait -n $API $WORKER || true
kill -TERM $API $WORKER 2>/dev/null || true
wait 2>/dev/null || true
