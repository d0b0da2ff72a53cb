#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts a local cluster (a broker and three
# stages with unequal memory budgets), generates text through it, shows the cluster, stops it.
# Model: $LAYERBUS_MODEL, else ../shared's stories260K, else a synthetic model (random weights:
# the text is gibberish, but every part of the pipeline runs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
bin="$root/build/bin"

model=${LAYERBUS_MODEL:-}
shared=${LAYERBUS_SHARED:-$root/../shared}
if [ -z "$model" ] && [ -f "$shared/models/stories260K.gguf" ]; then
  model="$shared/models/stories260K.gguf"
fi
if [ -z "$model" ]; then
  model="$root/build/demo-synthetic.gguf"
  [ -f "$model" ] || "$bin/layerbus" synth --arch llama --dim 256 --layers 6 --heads 8 --kv-heads 4 \
    --ffn 768 --vocab 512 --type q8_0 --out "$model"
fi

export LAYERBUS_STATE="$root/build/demo-cluster/cluster.json"
"$bin/layerbus" down >/dev/null 2>&1 || true
"$bin/layerbus" up --model "$model" --stages 3 --memory 1GiB,2GiB,3GiB &
up_pid=$!
trap '"$bin/layerbus" down >/dev/null 2>&1 || kill "$up_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [ -f "$LAYERBUS_STATE" ] && break
  kill -0 "$up_pid" 2>/dev/null || { echo "quickstart: the cluster did not start" >&2; exit 1; }
  sleep 0.1
done
echo
"$bin/layerbus" generate --prompt "Once upon a time" -n 128
echo
"$bin/layerbus" status
