#!/usr/bin/env bash
# Serve a released Molmo2 with vLLM's OpenAI-compatible server, for molmo2's client and batch tools
# (docs/vllm.md). GPU ONLY: needs NVIDIA GPUs, CUDA and `pip install vllm` (a vLLM with Molmo2 support,
# i.e. Molmo2ForConditionalGeneration in its model registry). Not run by the test suite: this machine has
# no GPU; what can be tested here (our client against our server) is in tests/serve/.
#
#   scripts/vllm_serve.sh                                  # allenai/Molmo2-4B on all visible GPUs, port 8000
#   MODEL=allenai/Molmo2-8B TP=2 PORT=8001 scripts/vllm_serve.sh
#   MOLMO2_API_KEY=secret scripts/vllm_serve.sh            # clients then pass --api-key secret
#
# Then, from any machine that reaches it:
#   molmo2 point dogs.jpg "dogs" --endpoint http://GPU_HOST:8000 --json
#   python -m molmo2.serve.batch --endpoint http://GPU_HOST:8000 --verb track --query "the ball" \
#       --out tracks.jsonl --workers 16 videos/*.mp4
set -euo pipefail

MODEL="${MODEL:-allenai/Molmo2-4B}"
PORT="${PORT:-8000}"
HOST="${HOST:-127.0.0.1}"          # 0.0.0.0 to accept other machines (then set MOLMO2_API_KEY)
MAX_LEN="${MAX_LEN:-36864}"         # prompt + answer tokens; a 384-frame video needs ~30k
VIDEOS="${VIDEOS:-1}"               # videos per request (molmo2's client sends at most one)
IMAGES="${IMAGES:-16}"              # images per request (an image set)

if ! command -v vllm >/dev/null 2>&1; then
  echo "vllm_serve.sh: vllm is not installed; on a CUDA machine: pip install vllm" >&2
  exit 2
fi
TP="${TP:-$( { nvidia-smi -L 2>/dev/null || true; } | grep -c '^GPU' || true)}"   # default: every visible GPU
if [ "${TP:-0}" -lt 1 ]; then
  echo "vllm_serve.sh: no NVIDIA GPU found (nvidia-smi -L lists none); vLLM needs one. On CPU use: molmo2 serve --model $MODEL" >&2
  exit 2
fi
if [ "$HOST" != "127.0.0.1" ] && [ -z "${MOLMO2_API_KEY:-}" ]; then
  echo "vllm_serve.sh: warning: serving on $HOST without MOLMO2_API_KEY: anyone who reaches the port can use it" >&2
fi

args=(serve "$MODEL"
  --host "$HOST" --port "$PORT"
  --served-model-name "$MODEL"
  --tensor-parallel-size "$TP"
  --dtype bfloat16
  --max-model-len "$MAX_LEN"
  --limit-mm-per-prompt "{\"image\": $IMAGES, \"video\": $VIDEOS}"
  --trust-remote-code)               # the released repos ship their processor as remote code
if [ -n "${MOLMO2_API_KEY:-}" ]; then args+=(--api-key "$MOLMO2_API_KEY"); fi

echo "vllm_serve.sh: vllm ${args[*]//$'\n'/ }" | sed "s/--api-key [^ ]*/--api-key ***/" >&2
exec vllm "${args[@]}" "$@"
