#!/usr/bin/env bash
# Creates (once) the virtual environment the PyTorch / onnxruntime reference runs in:
# .cache/bench-venv (git-ignored), from PyPI. Idempotent: a second run with the same requirements
# is a no-op; a changed requirements.txt reinstalls.
#
# PyPI has no CPU-only torch wheel for Linux x86_64 (the "+cpu" builds live only on the PyTorch
# index, which this project does not use), so `pip install torch` also pulls the nvidia-* CUDA
# runtime wheels (a few GB on disk); they are simply unused on a CPU machine.
#
# On the GPU machine do not run this: use the machine's own Python, which has torch and
# transformers (PYTHON=/opt/torch/.venv/bin/python; bench/run.sh picks it up automatically).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${BENCH_VENV:-$root/.cache/bench-venv}"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "bench venv up to date: $venv" >&2
  exit 0
fi
python="${PYTHON_FOR_VENV:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv ..." >&2
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
echo "installing $(grep -cv '^#' "$req") packages from PyPI into $venv (torch brings its CUDA wheels: several GB) ..." >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
"$venv/bin/python" - <<'PY' >&2
import importlib
for name in ("torch", "transformers", "onnx", "onnxruntime", "numpy"):
    m = importlib.import_module(name)
    print(f"  {name} {m.__version__}")
PY
echo "$want" > "$stamp"
