#!/usr/bin/env bash
# A large model bundle through the API (bench/scale.md, "Upload of a bundle"): the API's RSS while
# the upload streams, the job (int4 weights, benchmark off), and the artifact's ETag and Range.
# Usage: bash scripts/upload-bundle.sh [bundle.tar]   (default: the decoder fixture of
# `npm run bench:scale`, tarred into a temp file). Needs `npm run build`, Postgres and Redis.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-}
if [ -z "$BUNDLE" ]; then
  BUNDLE=$(mktemp --suffix=.tar)
  tar cf "$BUNDLE" -C .cache/fixtures decoder-406m.onnx decoder-406m.onnx.data || { echo "generate the decoder first: npm run bench:scale -- --cases decoder-inspect" >&2; exit 2; }
  CLEAN_BUNDLE=1
fi
echo "bundle: $BUNDLE ($(stat -c %s "$BUNDLE") bytes)"
TMP=$(mktemp -d)
CLI=dist/src/cli/main.js
DB=modelpress_upload_$$
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" postgres
export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/$DB REDIS_URL=redis://127.0.0.1:6379 MODELPRESS_DATA_DIR=$(mktemp -d) MODELPRESS_QUEUE=upload$$ HOST=127.0.0.1 PORT=18931 LOG_LEVEL=warn MAX_UPLOAD_BYTES=4000000000
node $CLI migrate >/dev/null
KEY=$(node $CLI keys create upload 2>/dev/null | tail -1)
node $CLI serve > $TMP/api.log 2>&1 & API=$!
node $CLI worker > $TMP/worker.log 2>&1 & WK=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:18931/readyz >/dev/null && break; sleep 0.5; done
rss() { awk '/VmRSS/{print $2}' /proc/$API/status; }
echo "api rss before (kB): $(rss)"
( peak=0; while kill -0 $API 2>/dev/null; do r=$(rss); [ "${r:-0}" -gt $peak ] && peak=$r && echo $peak > $TMP/api-peak; sleep 0.2; done ) & MON=$!
RECIPE='{"name":"int4-weights","steps":[{"pass":"quantize.weights","bits":4,"blockSize":32}],"benchmark":{"enabled":false}}'
T0=$(date +%s.%N)
curl -s -H "Authorization: Bearer $KEY" -F "recipe=$RECIPE" -F "model=@$BUNDLE" http://127.0.0.1:18931/v1/jobs > $TMP/job.json
T1=$(date +%s.%N)
echo "upload: $(echo "$T1 - $T0" | bc) s; reply: $(head -c 300 $TMP/job.json)"
echo "api rss after upload (kB): $(rss), peak so far $(cat $TMP/api-peak)"
ID=$(node -e "console.log(JSON.parse(require('fs').readFileSync(process.argv[1],'utf8')).id)" "$TMP/job.json")
for i in $(seq 900); do
  S=$(curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:18931/v1/jobs/$ID | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);console.log(j.status+' '+(j.error?JSON.stringify(j.error):''))})")
  case "$S" in succeeded*|failed*|canceled*) break;; esac; sleep 2
done
T2=$(date +%s.%N)
echo "job: $S after $(echo "$T2 - $T1" | bc) s"
curl -s -D $TMP/h1 -o $TMP/art.bin -H "Authorization: Bearer $KEY" http://127.0.0.1:18931/v1/jobs/$ID/artifact; grep -i -E "etag|content-length|content-type|content-disposition" $TMP/h1
echo "artifact sha256: $(sha256sum $TMP/art.bin | cut -c1-64)"
curl -s -D $TMP/h2 -o $TMP/art-part.bin -H "Range: bytes=1000-1999" -H "Authorization: Bearer $KEY" http://127.0.0.1:18931/v1/jobs/$ID/artifact; head -1 $TMP/h2; grep -i content-range $TMP/h2
cmp <(tail -c +1001 $TMP/art.bin | head -c 1000) $TMP/art-part.bin && echo "range bytes match"
echo "api peak rss (kB): $(cat $TMP/api-peak)"
kill $MON $API $WK 2>/dev/null; sleep 1
rm -rf "$MODELPRESS_DATA_DIR" "$TMP"
[ -n "${CLEAN_BUNDLE:-}" ] && rm -f "$BUNDLE"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $DB WITH (FORCE)" postgres
