#!/usr/bin/env bash
# `make demo`: the whole story on the bundled conv model, each step printing the command it
# runs (copy them into a shell to follow along).  Compile with its report, verify against
# the original, make it multicore, place it, run it on the simulated cores, serve it and send
# one REST request.  Usage: examples/demo.sh [OUT_DIR]  (default build/demo; .venv/bin tools).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${1:-build/demo}
MODEL=fixtures/tf1_conv
INPUTS=fixtures/tf1_conv.inputs.npz
SERVER=

step() {  # print the command as a shell would show it, then run it
  printf '\n$ %s\n' "$*"
  "$@"
}

stop_server() {
  if [ -n "$SERVER" ]; then
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=
  fi
}
trap stop_server EXIT

rm -rf "$OUT" && mkdir -p "$OUT"
echo "# 1. Compile: the segment table shows what runs on the NeuronCore"
step "$BIN/neuron-compile" "$MODEL" "$OUT/conv_neuron"
echo
echo "# 2. Verify: original (TensorFlow) vs compiled (simulated NeuronCores), same inputs"
step "$BIN/neuron-verify" "$MODEL" "$OUT/conv_neuron" --inputs "$INPUTS"
echo
echo "# 3. One copy of the NeuronOp per core, as AWS's tf-neuron-auto-multicore does"
step "$BIN/tf-neuron-auto-multicore" "$OUT/conv_neuron" --num_cores 2 \
  --new_model_dir "$OUT/conv_x2"
echo
echo "# 4. Or pin it: two cores starting at core 0 (NEURON_RT_VISIBLE_CORES still applies)"
step "$BIN/neuron-place" "$OUT/conv_neuron" --new_model_dir "$OUT/conv_nc0" \
  --start-nc 0 --nc-count 2
step "$BIN/neuron-inspect" "$OUT/conv_nc0"
echo
echo "# 5. Run: 4 caller threads, 8 calls each; the per-core table shows where the calls went"
step "$BIN/neuron-run" "$OUT/conv_x2" --inputs "$INPUTS" --threads 4 --repeat 8
echo
echo "# 6. Serve it with TF Serving's REST API (gRPC on --port) and send one request"
mkdir -p "$OUT/serve/conv" && cp -r "$OUT/conv_x2" "$OUT/serve/conv/1"
BASE=$(cd "$OUT/serve/conv" && pwd)
read -r GRPC REST < <("$BIN/python" -c '
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
printf '\n$ %s &\n' "$BIN/neuron-serve --port=$GRPC --rest_api_port=$REST --model_name=conv --model_base_path=$BASE"
"$BIN/neuron-serve" --port="$GRPC" --rest_api_port="$REST" --model_name=conv \
  --model_base_path="$BASE" 2> "$OUT/serve.log" &
SERVER=$!
URL="http://127.0.0.1:$REST/v1/models/conv"
for _ in $(seq 120); do  # the model loads in the background: wait until it is AVAILABLE
  if curl -sf "$URL" 2>/dev/null | grep -q AVAILABLE; then break; fi
  kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.5
done
step curl -s "$URL"
echo
# The request body: the first row of the sample inputs, in TF Serving's "inputs" format.
"$BIN/python" -c '
import json, sys
import numpy as np
data = np.load(sys.argv[1])
json.dump({"inputs": {k: data[k][:1].tolist() for k in data.files}}, open(sys.argv[2], "w"))
' "$INPUTS" "$OUT/request.json"
step curl -s -d @"$OUT/request.json" "$URL:predict" -o "$OUT/response.json"
"$BIN/python" -c '
import json, sys
import numpy as np
outputs = json.load(open(sys.argv[1]))["outputs"]
for key, value in sorted(outputs.items()):
    array = np.asarray(value)
    print(f"{key}: shape {array.shape}, first values {np.round(array.ravel()[:4], 4).tolist()}")
' "$OUT/response.json"
printf '\n$ kill -TERM %s   # neuron-serve finishes the requests in flight and exits 0\n' "$SERVER"
kill -TERM "$SERVER"
code=0
wait "$SERVER" || code=$?
SERVER=
echo "neuron-serve exited $code"
exit "$code"
