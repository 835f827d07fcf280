#!/usr/bin/env bash
# Issue 14's benchmarks on a lent accelerator, as the one prepared command a session runs there:
#
#   bash benchmarks/on_device.sh       # through the device tool: results into its $OUT
#
# The lent machines' image has jax with CUDA, flax, optax, orbax-checkpoint and chex in its
# python3, so nothing is installed. Each benchmark runs under its own time limit (about 8 minutes
# in all, under the tool's 10 minutes a command), so that one slow compilation cannot take the
# session's device time; each writes its .md and .json when it finishes, and on_device.log says
# which did. Settings are lighter than the CPU runs' (fewer rounds and repeats, 300 epochs for the
# CTF models): compare forms within one file, never with the CPU files' absolute times.
set -uo pipefail
out="${OUT:-benchmarks/results/device}"
py="${PYTHON:-python3}"
mkdir -p "$out"
log="$out/on_device.log"

run() {   # run LIMIT_SECONDS MODULE ARGS...
    local limit=$1; shift
    echo "== python -m $* --out $out (limit ${limit} s)" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$py" -m "$@" --out "$out" >>"$log" 2>&1
    echo "   exit $? after $((SECONDS - start)) s" | tee -a "$log"
}

"$py" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee -a "$log"
run 150 benchmarks.mrmp_step --repeats 20 --rounds 3
run 180 benchmarks.attention_share --rounds 3 --repeats 4
run 150 benchmarks.ctf_inference --epochs 300 --repeats 10 --rounds 3
