#!/usr/bin/env bash
# One prepared run for a machine with a CUDA GPU (see docs/benchmarks.md, "On a GPU"). From the repository root:
#
#     bash bench/gpu_session.sh [PHOTOS_DIR] [OUT_DIR]          # GPU_STEPS="tests train decoder sam encoder" by default
#
# PHOTOS_DIR (default .gpu/photos): a folder of photos to prepare and train on, e.g. made by
#     python -c "from bench.prepare import make_photos; from pathlib import Path; make_photos(Path('.gpu/photos'), 40)"
# OUT_DIR (default $OUT, else gpu-out/): where the logs and figures go.
# The distilled SAM comes from EIE_CACHE_DIR / EIE_TINYSAM as everywhere (docs/sam.md); nothing is downloaded.
#
# It runs, each under its own time limit so that one hang cannot eat the rest:
#   1. the GPU tests (pytest -m gpu);
#   2. `prepare` on the GPU with the default backend, then stage 1 (paper preset, bf16) through `accelerate launch`
#      from those shards repeated 8 times (so that 4 workers' batches are full), stopped at a checkpoint and resumed
#      with `--resume latest`; train_log.jsonl's samples_per_s is the training throughput;
#   3. bench/decoder.py --device cuda: the element-conditioned UNet at SD-1.5's size against the vanilla UNet;
#   4. bench/sam_device.py: the distilled-SAM partition on CUDA against the CPU;
#   5. bench/encoder.py --device cuda --dtype bfloat16: the paper-preset content encoder and light decoder.
# Everything is appended to OUT_DIR/session.log; train_log.jsonl and the last validation image are copied beside it.
set -uo pipefail
PHOTOS=${1:-.gpu/photos}
OUTDIR=${2:-${OUT:-gpu-out}}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 EIE_NO_NPM=1
WORK=$(mktemp -d)
status=0

step() {  # step NAME LIMIT_S COMMAND...: run one step under its limit, append its log to OUTDIR/session.log
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    { echo "=== $name: $*"; cat "$WORK/$name.log"; } >>"$OUTDIR/session.log"
    tail -n 40 "$WORK/$name.log"
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, onnxruntime; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      'diffusers', diffusers.__version__, 'onnxruntime', onnxruntime.__version__)"

want() { [[ " ${GPU_STEPS:-tests train decoder sam encoder} " == *" $1 "* ]]; }

if want tests; then
    step gpu_tests 150 python3 -m pytest -m gpu -q -p no:cacheprovider --timeout 120 -rs \
        tests/test_train_stage1.py tests/test_pipeline.py tests/test_decoders.py tests/test_sam_real.py
fi
if want train; then
    step prepare 100 python3 -m elements prepare --train-data "$PHOTOS" --output-dir "$WORK/prepared" --samples-per-shard 5
    mkdir -p "$WORK/repeated" && cp "$WORK/prepared/prepare.json" "$WORK/repeated/"
    n=0
    for copy in 1 2 3 4 5 6 7 8; do
        for tar in "$WORK"/prepared/prepared-*.tar; do
            name=$(printf 'prepared-%06d' $n) && n=$((n + 1))
            cp "$tar" "$WORK/repeated/$name.tar" && cp "${tar%.tar}.stats.json" "$WORK/repeated/$name.stats.json"
        done
    done
    TRAIN=(accelerate launch --num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no
        -m elements train stage1 --train-data "$WORK/repeated" --output-dir "$WORK/run" --preset paper
        --logging-steps 10 --validation-steps 80 --checkpointing-steps 50 --dataloader-num-workers 4)
    step stage1 150 "${TRAIN[@]}" --max-train-steps 50
    step stage1_resume 100 "${TRAIN[@]}" --max-train-steps 80 --resume latest
fi
want decoder && step decoder 120 python3 bench/decoder.py --device cuda --repeats 3 --steps 20
want sam && step sam_device 90 python3 bench/sam_device.py
want encoder && step encoder 60 python3 bench/encoder.py --preset paper --device cuda --dtype bfloat16
cp "$WORK/run/train_log.jsonl" "$OUTDIR/" 2>/dev/null
cp "$(ls "$WORK"/run/validation/*.png 2>/dev/null | tail -n 1)" "$OUTDIR/validation.png" 2>/dev/null
echo "=== gpu_session: $([ $status -eq 0 ] && echo all steps passed || echo some step failed)"
exit $status
