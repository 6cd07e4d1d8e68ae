#!/usr/bin/env bash
# GPU check for one NVIDIA GPU (written for an H100 box: torch + CUDA, CuPy, cuda-bindings, nvcc;
# no TensorRT; CPU-only onnxruntime; no internet). Installs nothing.
#
#   bash benchmarks/gpu_check.sh              # the real run (< 8 minutes; GPU_CHECK_BUDGET_S caps it)
#   bash benchmarks/gpu_check.sh --dry-run    # parse + environment + entry points; skips every GPU step
#   OUT=/some/dir bash benchmarks/gpu_check.sh   # results folder (default ./gpu_out)
#   GPU_CHECK_STEPS=bench,cli bash benchmarks/gpu_check.sh   # only some steps (native,pytest,bench,cli)
#
# Steps (each time-boxed, each one line in the log and in summary.json; a failing step does not stop
# the others; the exit status is 1 when any step failed):
#   env       nvidia-smi, nvcc, cmake, python, torch/CUDA facts            -> env.txt
#   python    pick the interpreter and make `ganrt` importable (below)      -> log
#   native    cmake -DGANRT_WITH_CUDA=ON build of libganrt_ops (this GPU's arch) -> native-build.txt
#   pytest    pytest -m gpu tests/native tests/conformance                  -> pytest-gpu.txt, pytest-gpu.xml,
#                                                                              conformance.jsonl (measured PSNRs)
#   bench     torch runner fp32/fp16 x CUDA graphs off/on x 1x1x512x512, 1x1x1080x1920
#             (benchmarks/torch_bench.py: CUDA-event H2D/compute/D2H, host percentiles) -> torch_bench.json
#   cli       `ganrt bench --backend torch` (registry path, desktop-rtx profile, fp16, 1080p) -> ganrt_bench_torch.json
#   compare   `ganrt bench --compare` torch fp32/fp16 at 512² and 1080p, interleaved, ratios -> compare_gpu_torch.json
#   tasks     the torch runner on every other bundled task (us-sr2x, intraop-enhance) -> torch_bench_<task>.json
#   summary.json, gpu_check.log
#
# Python: $GANRT_PYTHON if set, else the repo's .venv/bin/python if it imports torch, else python3.
# If `import ganrt.runtime` fails with it (no venv / no editable install there), ganrt is made
# importable without installing anything: a shim folder with symlinks ganrt/{runtime,export,
# benchmarks,firmware_configs} -> the source folders goes first on PYTHONPATH (the source files
# resolve their own paths, so bundled assets and profiles are found as in an editable install).
# The console script `ganrt` is replaced by `python -m ganrt.runtime.cli`.
set -uo pipefail

DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run|-n) DRY=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/gpu_check.log"
STEPS="$OUT/.steps.tsv"
: > "$LOG"
: > "$STEPS"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
BUDGET="${GPU_CHECK_BUDGET_S:-450}"   # the whole run, seconds (under the 8-minute target)
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/ganrt-gpu-check.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
FAILED=0

say() { printf '[gpu_check %4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$STEPS"; }   # name status seconds note

# run_step NAME CAP_SECONDS CMD...: time-boxed by the remaining budget; output to the log.
run_step() {
  local name="$1" cap="$2"; shift 2
  local left=$(( BUDGET - ($(date +%s) - START) ))
  local limit=$(( cap < left ? cap : left ))
  if (( limit < 15 )); then
    say "SKIP $name: out of time (${left}s of ${BUDGET}s left)"; record "$name" skipped 0 "out of time"; return 0
  fi
  say "RUN  $name (limit ${limit}s): $*"
  local t0=$(date +%s) rc=0
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if (( rc == 0 )); then
    say "OK   $name (${dt}s)"; record "$name" ok "$dt" ""
  else
    local why="exit $rc"; (( rc == 124 || rc == 137 )) && why="timed out after ${limit}s"
    say "FAIL $name ($why, ${dt}s)"; record "$name" failed "$dt" "$why"; FAILED=1
  fi
  return 0
}

STEPS_WANTED=",${GPU_CHECK_STEPS:-native,pytest,bench,cli,compare,tasks},"   # e.g. GPU_CHECK_STEPS=bench,cli to rerun part
want() { [[ "$STEPS_WANTED" == *",$1,"* ]]; }
skip_step() { say "SKIP $1: $2"; record "$1" skipped 0 "$2"; }
dry_skip() { say "DRY RUN: skipping $1 (would run: $2)"; record "$1" dry-run 0 "$2"; }

say "ganrt GPU check; repo $REPO; results in $OUT$([[ $DRY == 1 ]] && echo '; DRY RUN')"
if (( DRY )); then
  bash -n "$0" && say "script parses (bash -n)"
fi

# --- env ------------------------------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -a)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv \
    || echo "nvidia-smi: not found"
  command -v nvcc >/dev/null && nvcc --version | tail -2 || echo "nvcc: not on PATH"
  command -v cmake >/dev/null && cmake --version | head -1 || echo "cmake: not found"
} > "$OUT/env.txt" 2>&1
HAVE_GPU=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then HAVE_GPU=1; fi

# --- python -----------------------------------------------------------------------------------------
PY="${GANRT_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]] && "$REPO/.venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
    PY="$REPO/.venv/bin/python"
  else
    PY="$(command -v python3 || true)"
  fi
fi
if [[ -z "$PY" ]]; then
  say "FAIL python: no python3 found"; record python failed 0 "no python3"; FAILED=1
else
  if ! (cd "$SCRATCH" && "$PY" -c 'import ganrt.runtime') >/dev/null 2>&1; then
    SHIM="$SCRATCH/pyshim/ganrt"
    mkdir -p "$SHIM"
    for d in runtime export benchmarks firmware_configs; do ln -s "$REPO/$d" "$SHIM/$d"; done
    export PYTHONPATH="$SCRATCH/pyshim${PYTHONPATH:+:$PYTHONPATH}"
    say "ganrt is not installed for $PY: using a symlink shim on PYTHONPATH ($SCRATCH/pyshim)"
  fi
  if (cd "$SCRATCH" && "$PY" -c 'import ganrt.runtime, ganrt.benchmarks') >/dev/null 2>&1; then
    record python ok 0 "$PY"
  else
    say "FAIL python: ganrt still not importable with $PY"; record python failed 0 "ganrt not importable"; FAILED=1
  fi
  "$PY" - >> "$OUT/env.txt" 2>&1 <<'EOF'
import importlib, sys
print("python:", sys.version.split()[0], sys.executable)
for m in ("numpy", "cv2", "onnx", "onnxruntime", "torch", "safetensors", "pytest", "cupy", "cuda.bindings", "tensorrt"):
    try:
        mod = importlib.import_module(m)
        print(f"{m}: {getattr(mod, '__version__', 'present')}")
    except Exception as exc:
        print(f"{m}: absent ({exc.__class__.__name__})")
try:
    import torch
    print("torch.cuda:", torch.version.cuda, "available:", torch.cuda.is_available(),
          "device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception:
    pass
EOF
fi
cat "$OUT/env.txt"
py_has() { [[ -n "$PY" ]] && (cd "$SCRATCH" && "$PY" -c "import $1") >/dev/null 2>&1; }

# --- native -----------------------------------------------------------------------------------------
NATIVE_BUILD="$SCRATCH/native-build"
native_build() {
  local arch="" nvcc_bin
  nvcc_bin="$(command -v nvcc || true)"
  [[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_bin=/usr/local/cuda/bin/nvcc
  if command -v nvidia-smi >/dev/null; then
    arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
  fi
  local args=(-S "$REPO" -B "$NATIVE_BUILD" -DCMAKE_BUILD_TYPE=Release -DGANRT_WITH_CUDA=ON)
  [[ -n "$nvcc_bin" ]] && args+=(-DCMAKE_CUDA_COMPILER="$nvcc_bin")
  [[ -n "$arch" ]] && args+=(-DCMAKE_CUDA_ARCHITECTURES="$arch")   # this GPU only: a faster build
  cmake "${args[@]}" | tee "$NATIVE_BUILD.configure.txt" && cmake --build "$NATIVE_BUILD" -j"$(nproc)" \
    && test -f "$NATIVE_BUILD/native/libganrt_ops.so" \
    && { grep -q 'ganrt_ops: CUDA' "$NATIVE_BUILD.configure.txt" || { echo "CMake found no CUDA compiler"; false; }; }
}
if ! want native; then
  skip_step native "not in GPU_CHECK_STEPS"
elif (( DRY )); then
  dry_skip native "cmake -S $REPO -B <scratch> -DGANRT_WITH_CUDA=ON && cmake --build"
elif ! command -v cmake >/dev/null; then
  skip_step native "cmake not found"
else
  export -f native_build; export REPO NATIVE_BUILD OUT
  run_step native 150 bash -c 'set -o pipefail; native_build > "$OUT/native-build.txt" 2>&1'
  export -n -f native_build
  tail -3 "$OUT/native-build.txt" 2>/dev/null
  [[ -f "$NATIVE_BUILD/native/libganrt_ops.so" ]] && export GANRT_NATIVE_LIB="$NATIVE_BUILD/native/libganrt_ops.so"
fi

# --- pytest -----------------------------------------------------------------------------------------
export GANRT_CONFORMANCE_OUT="$OUT/conformance.jsonl"
: > "$GANRT_CONFORMANCE_OUT"
if ! want pytest; then
  skip_step pytest "not in GPU_CHECK_STEPS"
elif (( DRY )); then
  dry_skip pytest "$PY -m pytest -m gpu tests/native tests/conformance -q -rs"
elif ! py_has pytest; then
  skip_step pytest "pytest is not installed for $PY (nothing is installed here)"
else
  run_step pytest 270 bash -c "cd '$REPO' && '$PY' -m pytest -m gpu tests/native tests/conformance -q -rs \
    -p no:cacheprovider --junitxml='$OUT/pytest-gpu.xml' > '$OUT/pytest-gpu.txt' 2>&1"
  tail -25 "$OUT/pytest-gpu.txt" 2>/dev/null
fi

# --- bench (torch runner) -------------------------------------------------------------------------
if ! want bench; then
  skip_step bench "not in GPU_CHECK_STEPS"
elif (( DRY )); then
  if [[ -n "$PY" ]] && (cd "$SCRATCH" && "$PY" -m ganrt.benchmarks.torch_bench --help) >/dev/null 2>&1; then
    say "entry point ok: python -m ganrt.benchmarks.torch_bench --help"
  else
    say "FAIL entry point: python -m ganrt.benchmarks.torch_bench --help"; record entry-points failed 0 torch_bench; FAILED=1
  fi
  dry_skip bench "$PY -m ganrt.benchmarks.torch_bench --out $OUT/torch_bench.json"
elif (( ! HAVE_GPU )) || ! py_has torch; then
  skip_step bench "no GPU (nvidia-smi) or no torch for $PY"
else
  run_step bench 180 bash -c "cd '$SCRATCH' && '$PY' -m ganrt.benchmarks.torch_bench --out '$OUT/torch_bench.json' \
    --bundle-dir '$OUT/bench_bundle' --iterations 200 --warmup 20"
fi

# --- cli (registry path) ------------------------------------------------------------------------
MODEL_ARGS=()
if [[ ! -f "$REPO/runtime/models/us-enhance/manifest.json" && -f "$OUT/bench_bundle/manifest.json" ]]; then
  MODEL_ARGS=(--model "$OUT/bench_bundle")   # no bundled student: the bench's random-init one
fi
if ! want cli; then
  skip_step cli "not in GPU_CHECK_STEPS"
elif (( DRY )); then
  if [[ -n "$PY" ]] && (cd "$SCRATCH" && "$PY" -m ganrt.runtime.cli bench --help) >/dev/null 2>&1; then
    say "entry point ok: python -m ganrt.runtime.cli bench --help"
  else
    say "FAIL entry point: python -m ganrt.runtime.cli bench --help"; record entry-points failed 0 cli; FAILED=1
  fi
  dry_skip cli "$PY -m ganrt.runtime.cli bench --backend torch --precision fp16 --profile desktop-rtx --shape 1x1x1080x1920"
elif (( ! HAVE_GPU )) || ! py_has torch; then
  skip_step cli "no GPU (nvidia-smi) or no torch for $PY"
else
  run_step cli 60 bash -c "cd '$SCRATCH' && '$PY' -m ganrt.runtime.cli bench --backend torch --precision fp16 \
    --profile desktop-rtx --shape 1x1x1080x1920 --iterations 200 --warmup 20 --json ${MODEL_ARGS[*]:-} \
    > '$OUT/ganrt_bench_torch.json'"
fi

# --- compare (interleaved, ratios) ---------------------------------------------------------------
if ! want compare; then
  skip_step compare "not in GPU_CHECK_STEPS"
elif (( DRY )); then
  dry_skip compare "$PY -m ganrt.runtime.cli bench --compare torch/fp32@512,torch/fp16@512,torch/fp32@1080x1920,torch/fp16@1080x1920"
elif (( ! HAVE_GPU )) || ! py_has torch; then
  skip_step compare "no GPU (nvidia-smi) or no torch for $PY"
else
  run_step compare 90 bash -c "cd '$SCRATCH' && '$PY' -m ganrt.runtime.cli bench --profile desktop-rtx \
    --compare torch/fp32@512,torch/fp16@512,torch/fp32@1080x1920,torch/fp16@1080x1920 --iterations 300 --warmup 30 \
    --json ${MODEL_ARGS[*]:-} > '$OUT/compare_gpu_torch.json'"
fi

# --- tasks (the other bundled models) --------------------------------------------------------------
task_shapes() {   # input shapes whose outputs are 512² and 1080p
  case "$1" in
    us-sr2x) echo "1x1x256x256,1x1x540x960" ;;
    intraop-enhance) echo "1x3x512x512,1x3x1080x1920" ;;
    *) echo "1x1x512x512,1x1x1080x1920" ;;
  esac
}
for mdir in "$REPO"/runtime/models/*/; do
  task="$(basename "$mdir")"
  [[ "$task" == us-enhance || ! -f "$mdir/manifest.json" ]] && continue
  if ! want tasks; then
    skip_step "task-$task" "not in GPU_CHECK_STEPS"
  elif (( DRY )); then
    dry_skip "task-$task" "$PY -m ganrt.benchmarks.torch_bench --model $mdir --shapes $(task_shapes "$task")"
  elif (( ! HAVE_GPU )) || ! py_has torch; then
    skip_step "task-$task" "no GPU (nvidia-smi) or no torch for $PY"
  else
    run_step "task-$task" 90 bash -c "cd '$SCRATCH' && '$PY' -m ganrt.benchmarks.torch_bench --model '$mdir' \
      --shapes $(task_shapes "$task") --iterations 200 --warmup 20 --out '$OUT/torch_bench_$task.json'"
  fi
done

# --- summary ------------------------------------------------------------------------------------------
TOTAL=$(( $(date +%s) - START ))
if [[ -n "$PY" ]]; then
  "$PY" - "$STEPS" "$OUT/summary.json" "$DRY" "$TOTAL" "$FAILED" "$HAVE_GPU" <<'EOF'
import json, sys
steps_tsv, out, dry, total, failed, gpu = sys.argv[1:]
steps = []
for line in open(steps_tsv):
    name, status, seconds, note = (line.rstrip("\n").split("\t") + [""] * 4)[:4]
    steps.append({"step": name, "status": status, "seconds": int(seconds or 0), "note": note})
json.dump({"dry_run": dry == "1", "gpu_seen": gpu == "1", "total_seconds": int(total), "failed": failed == "1",
           "steps": steps}, open(out, "w"), indent=2)
EOF
else
  printf '{"dry_run": %s, "total_seconds": %s, "failed": true, "steps": []}\n' \
    "$([[ $DRY == 1 ]] && echo true || echo false)" "$TOTAL" > "$OUT/summary.json"
fi
rm -f "$STEPS"
say "done in ${TOTAL}s; $( (( FAILED )) && echo 'SOME STEPS FAILED' || echo 'no step failed'); see $OUT/summary.json"
exit "$FAILED"
