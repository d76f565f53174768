#!/usr/bin/env bash
# The GPU checks, in one run on a CUDA machine: the gpu-marked tests (every reference case on
# the GPU against C, both dtypes, eager; the compiled kernel on a few cases; the seed frame
# against the CPU), then the benchmarks (kernel, tiled, tile sweep, stills) on the GPU.
#
#   deploy/gpu_check.sh [OUT_FOLDER] [SECONDS]
#
# Needs braggtile importable (installed, or on PYTHONPATH), CUDA, and the C reference folder at
# ../shared/reference (or $BRAGGTILE_REFERENCE; the seed image may be left out). Writes
# OUT_FOLDER/pytest.log, OUT_FOLDER/bench.jsonl (one JSON line per benchmark, each preceded by
# a line naming it), OUT_FOLDER/bench.log, OUT_FOLDER/cluster.log (the preloaded workers) and
# OUT_FOLDER/env.txt; every step has its own time limit and the run stops starting steps once
# SECONDS (default 540) have passed.
# GPU_CHECK_TESTS (a pytest -k expression) and GPU_CHECK_BENCHES (benchmark names) narrow it.
set -uo pipefail
out="${1:-gpu-check}"
budget="${2:-540}"
mkdir -p "$out"
start=$SECONDS
py="${PYTHON:-python3}"

step() {  # step NAME LIMIT_SECONDS COMMAND...: run it if time is left, say how it ended
    local name=$1 limit=$2 rest=$((budget - (SECONDS - start)))
    shift 2
    if ((rest < 20)); then
        echo "== $name: skipped (out of time)"
        return
    fi
    ((limit > rest)) && limit=$rest
    echo "== $name (limit ${limit} s) at $((SECONDS - start)) s"
    local t0=$SECONDS
    timeout "$limit" "$@"
    echo "== $name: exit $? after $((SECONDS - t0)) s"
}

wanted() {  # wanted NAME: whether GPU_CHECK_BENCHES (if set) names this benchmark
    [[ -z ${GPU_CHECK_BENCHES:-} || " $GPU_CHECK_BENCHES " == *" $1 "* ]]
}

bench() {  # bench NAME LIMIT ARGS...: braggtile bench ARGS; its JSON line into bench.jsonl
    local name=$1 limit=$2
    shift 2
    wanted "$name" || return
    step "bench $name" "$limit" "$py" -m service.cli bench "$@" >"$out/last.log" 2>&1
    cat "$out/last.log" >>"$out/bench.log"
    grep -h "^== " "$out/last.log"
    tail -n 3 "$out/last.log" | grep -v "^{" | grep -v "^== "
    echo "# $name" >>"$out/bench.jsonl"
    grep "^{" "$out/last.log" >>"$out/bench.jsonl" && grep "^{" "$out/last.log" | cut -c 1-400
    rm -f "$out/last.log"
}

preloaded() {  # preloaded NAME LIMIT ARGS...: bench --tiled ARGS on a scheduler and two workers
    # declaring the GPU, started as the README's "Clusters" says (--preload tiling.warm)
    local name=$1 limit=$2 pids=""
    shift 2
    wanted "$name" || return
    "$py" -m dask scheduler --port 8799 --no-dashboard >>"$out/cluster.log" 2>&1 &
    pids=$!
    for _ in 1 2; do
        "$py" -m dask worker tcp://127.0.0.1:8799 --nthreads 1 --resources GPU=1 \
            --no-dashboard --preload tiling.warm >>"$out/cluster.log" 2>&1 &
        pids+=" $!"
    done
    step "workers of $name" 180 "$py" -c 'from distributed import Client
Client("tcp://127.0.0.1:8799", timeout=60).wait_for_workers(2, timeout=170)'
    bench "$name" "$limit" --tiled --scheduler tcp://127.0.0.1:8799 "$@"
    kill $pids 2>/dev/null
    wait $pids 2>/dev/null
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    "$py" -c 'import torch, sys; print(sys.version); print("torch", torch.__version__,
        torch.version.cuda, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))'
    nproc
} >"$out/env.txt" 2>&1
cat "$out/env.txt"

SEED="-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 -detpixels 4096 -pixel 0.05"
MOS="-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 10 -misset 3 7 11 -mosaic 1.0 -mosaic_domains 10 -mosaic_seed 1234 -distance 200 -detpixels 1024"
DIV="-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 10 -misset 4 8 12 -hdivrange 0.5 -vdivrange 0.5 -hdivsteps 3 -vdivsteps 3 -dispersion 0.5 -dispsteps 3 -distance 200 -detpixels 1024"
NB400="-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 10 -misset 3 7 11 -mosaic 1.0 -mosaic_domains 5 -mosaic_seed 1234 -phi 0 -osc 0.5 -phisteps 5 -oversample 4 -water 100 -distance 200 -detpixels 1024"
STILL="-cell 78 78 37 90 90 90 -N 30 -default_F 100 -lambda 1 -distance 120 -detpixels 512 -pixel 0.1 -water 5 -fluence 1e28 -mosaic 0.2 -mosaic_domains 10 -dispersion 1 -dispsteps 3 -oversample 2"

# correctness first: eager parity on every case, then the compiled kernel on a few
# (GPU_CHECK_TESTS: another pytest -k expression; GPU_CHECK_BENCHES: the benchmarks to run)
tests="not full_frame and (eager or not test_parity_with_c_on_cuda or mosaic_domains-float32"
tests+=" or divergence_dispersion-float32 or water_background-float32)"
step "gpu tests" 240 "$py" -m pytest -q -p no:cacheprovider -m gpu -rfE --maxfail=12 \
    -k "${GPU_CHECK_TESTS:-$tests}" \
    tests/test_parity.py tests/test_kernel_compile.py tests/test_noise.py \
    tests/test_structure_factors.py tests/test_tiling.py tests/test_warm.py >"$out/pytest.log" 2>&1
grep -v "^tests/.* PASSED" "$out/pytest.log" | tail -n 40

bench seed-compiled 90 --device cuda --repeat 12 --compile on --nanobragg "$SEED"
bench seed-eager 40 --device cuda --repeat 12 --compile off --nanobragg "$SEED"
bench seed-float64 60 --device cuda --repeat 6 --dtype float64 --nanobragg "$SEED"
bench nb400 60 --device cuda --repeat 12 --nanobragg "$NB400"
bench tiled-seed-1 90 --tiled --workers 1 --tile 1024 --frames 1 --repeat 5 --nanobragg "$SEED"
bench tiled-seed-8 90 --tiled --workers 1 --tile 1024 --frames 8 --repeat 3 --keep-stores --nanobragg "$SEED"
bench tiled-seed-8-w4 90 --tiled --workers 4 --tile 1024 --frames 8 --repeat 3 --keep-stores --nanobragg "$SEED"
preloaded tiled-preloaded-1 90 --tile 1024 --frames 1 --repeat 5 --nanobragg "$SEED"
bench tiled-noise-8-w4 90 --tiled --workers 4 --tile 1024 --frames 8 --repeat 3 --keep-stores --noise --no-photons --nanobragg "$SEED"
bench tile-sweep 90 --tile-sweep --frames 4 --repeat 3 --nanobragg "$NB400"
bench mos 45 --device cuda --repeat 12 --nanobragg "$MOS"
bench div 45 --device cuda --repeat 12 --nanobragg "$DIV"
bench stills-1000 120 --tiled --workers 4 --tile 512 --stills 1000 --vary orientation=random --seed 7 --repeat 1 --nanobragg "$STILL"
echo "== done at $((SECONDS - start)) s"
