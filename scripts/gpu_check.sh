#!/usr/bin/env bash
# The device check of issue 20: the device paths of the test suite and the benchmarks on one
# device, every figure in one JSON file. Written so that a session lent a GPU for a few
# minutes spends them measuring, not preparing: one command, under 10 minutes on an
# H100-class GPU (each part has a time limit; the limits add up to 9.5 minutes).
#
#   scripts/gpu_check.sh [--device cuda|cuda:N|cpu] [--out FILE.json] [--quick]
#
#   --device   default cuda. cpu runs the same parts with CPU-sized settings (a dry run of
#              the script itself; its figures are CPU figures).
#   --out      default gpu_check.json (relative to the current folder).
#   --quick    fewer steps and smaller sizes (on cpu: a few minutes on a loaded 2-core box).
#
# Parts: pytest tests/test_device_paths.py with CXRGAN_TEST_DEVICE set, pytest
# tests/test_training_ddp.py (torchrun, gloo, CPU), tests/benchmarks/bench_generate.py (cuda:
# 1024 px, batch 64, float16 then float32), bench_train.py (images/s per resolution),
# bench_fid.py (FID features from 1024 px images). bench_lco.py is recorded as skipped: it
# has no device option, so on a GPU machine it would time the CPU.
# A part that fails or runs out of time is recorded and the others still run; the exit
# status is 1 when any part failed, 2 for a usage error. The environment variable PYTHON
# chooses the interpreter (default: .venv/bin/python beside this script, else python3).
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

device="cuda"
out="gpu_check.json"
quick=0
while (($# > 0)); do
    case "$1" in
        --device) device="${2:?--device needs a value}"; shift 2 ;;
        --device=*) device="${1#*=}"; shift ;;
        --out) out="${2:?--out needs a file name}"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --quick) quick=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$device" in
    cpu | cuda | cuda:[0-9]*) ;;
    *) echo "gpu_check.sh: --device must be cuda, cuda:N or cpu, not '$device'" >&2; exit 2 ;;
esac
case "$out" in
    /*) ;;
    *) out="$PWD/$out" ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then
        python="$root/.venv/bin/python"
    else
        python="$(command -v python3)"
    fi
fi
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export QT_QPA_PLATFORM=offscreen
work="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
: >"$work/parts.tsv"
started=$SECONDS

# run_part NAME KIND LIMIT_SECONDS COMMAND...: run it under `timeout` (which signals the
# whole process group, torchrun's workers included), keep its output in the work folder,
# and record name, kind, exit status, seconds and command for the collector.
run_part() {
    local name="$1" kind="$2" limit="$3"
    shift 3
    echo "== $name (at most ${limit} s): $*"
    local begin="${EPOCHREALTIME:-$(date +%s)}" status=0
    timeout --kill-after=15 "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err" || status=$?
    local end="${EPOCHREALTIME:-$(date +%s)}"
    local seconds
    seconds="$(awk -v a="$begin" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$status" "$seconds" "$*" >>"$work/parts.tsv"
    if ((status == 0)); then
        echo "   ok, ${seconds} s"
    else
        echo "   FAILED (exit status $status, ${seconds} s); last lines of its error output:"
        tail -n 15 "$work/$name.err" | sed 's/^/   | /'
    fi
}

skip_part() {
    local name="$1" reason="$2"
    echo "== $name: skipped ($reason)"
    printf '%s\tskipped\t-\t0\t%s\n' "$name" "$reason" >>"$work/parts.tsv"
}

pytest_part() {
    local name="$1" limit="$2"
    shift 2
    run_part "$name" pytest "$limit" env CXRGAN_TEST_DEVICE="$device" \
        "$python" -m pytest -q -p no:cacheprovider --junitxml="$work/$name.xml" "$@"
}

bench="tests/benchmarks"
if [[ "$device" == cuda* ]]; then
    if ((quick)); then
        gen_fp16=(--batches 64 --repeats 2 --quick)
        gen_fp32=(--batches 64 --repeats 2 --quick)
        train_args=(--max-resolution 256 --steps 2 --batch 8)
        fid_args=(--images 128 --batch-size 64 --repeats 1 --skip-sqrtm)
    else
        gen_fp16=(--batches "16,64" --repeats 3)
        gen_fp32=(--batches 64 --repeats 3 --quick)
        train_args=(--max-resolution 1024 --steps 5 --batch 8)
        fid_args=(--images 256 --batch-size 64 --repeats 1 --skip-sqrtm)
    fi
    limits=(150 90 120 60 75 75)  # tests, ddp, generate fp16, generate fp32, train, fid
else
    if ((quick)); then
        gen_fp16=()
        gen_fp32=(--batches 1 --repeats 1 --quick)
        train_args=(--max-resolution 8 --steps 1 --batch 4)
        fid_args=(--images 4 --batch-size 2 --features 1024 --small 256 --repeats 1
            --skip-sqrtm)
    else
        gen_fp16=()
        gen_fp32=(--repeats 3)
        train_args=(--max-resolution 32 --steps 3 --batch 8)
        fid_args=(--images 32 --batch-size 16 --skip-sqrtm)
    fi
    limits=(300 300 0 600 300 300)  # a loaded CPU is slow; these guard against hangs only
fi

pytest_part tests_device_paths "${limits[0]}" tests/test_device_paths.py
pytest_part tests_training_ddp "${limits[1]}" tests/test_training_ddp.py
if ((${#gen_fp16[@]} > 0)); then
    run_part bench_generate_fp16 json "${limits[2]}" "$python" "$bench/bench_generate.py" \
        --device "$device" --precision float16 "${gen_fp16[@]}"
else
    skip_part bench_generate_fp16 "float16 generation is timed on CUDA only"
fi
run_part bench_generate_fp32 json "${limits[3]}" "$python" "$bench/bench_generate.py" \
    --device "$device" --precision float32 "${gen_fp32[@]}"
run_part bench_train json "${limits[4]}" "$python" "$bench/bench_train.py" \
    --device "$device" "${train_args[@]}"
run_part bench_fid json "${limits[5]}" "$python" "$bench/bench_fid.py" \
    --device "$device" "${fid_args[@]}"
skip_part bench_lco "bench_lco.py has no --device option: on this machine it would time the CPU"

echo "== collecting ($((SECONDS - started)) s so far; outputs kept in $work)"
collect=("$python" scripts/gpu_check_collect.py --work "$work" --out "$out" --device "$device")
if ((quick)); then
    collect+=(--quick)
fi
status=0
"${collect[@]}" || status=$?
if [[ -f "$out" ]]; then
    echo "gpu_check: $((SECONDS - started)) s in all; the JSON is $out"
else
    echo "gpu_check: no JSON was written (the collector failed: exit status $status);" \
        "the parts' outputs are in $work" >&2
    status=$((status == 0 ? 1 : status))
fi
exit "$status"
