#!/usr/bin/env bash
# Fine-tune the bundled STS model on a lent GPU machine (the library's device tool) for as many steps as fit in
# a time budget, and leave the result in $OUT: the average of the last three snapshots and the last snapshot,
# stored as float16 and split in parts under 16 MiB (the tool's limit per file), their config, the run's
# settings and log.
#
# The machine reaches no registry and takes 64 MiB of luggage, so it trains on a packed bank
# (python -m model.data.pack --out pack/bank ...) and installs wheels carried in .whl (soundfile with its cffi
# and pycparser, soxr) when they are missing. Run from the repository root, carrying pack and .whl:
#
#     TRAIN_SECONDS=420 bash scripts/device_train.sh
#
# A probe of 60 steps measures the step rate first; the run then resumes from the probe with its total number
# of steps set to fill TRAIN_SECONDS (counted from the script's start), so the cosine schedule ends on time.
# The settings below can be overridden from the environment. Back here: cat avg.half.part-* > model.safetensors
# next to config.json makes a loadable checkpoint.
set -euo pipefail
OUT=${OUT:-/tmp/out}
RUN=${RUN:-/tmp/run}
PYTHON=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-420}
BATCH=${BATCH:-40}
LR=${LR:-0.001}  # session 20's run at 0.002 (40 sessions a step) came out worse than the model it started from
LOADERS=${LOADERS:-$(($(nproc) - 2))}
SEED=${SEED:-21}
AMP=${AMP:-bf16}
mkdir -p "$OUT"
start=$(date +%s)
if [ -d .whl ] && ! "$PYTHON" -c "import soundfile, soxr" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$PYTHON" -c "import torch, soundfile, soxr; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

train() {  # $1 = total steps of the schedule; the rest are extra options; output in $OUT/train.log
  local steps=$1
  shift
  "$PYTHON" -m model.train --out "$RUN" --init bundled --steps "$steps" --batch-size "$BATCH" --lr "$LR" \
    --warmup 150 --min-lr-ratio 0.05 --weight-decay 0.01 --grad-clip 5.0 --keep-snapshots 3 --eval-every 100000 \
    --threads 2 --seed "$SEED" --workers 1 --loaders "$LOADERS" --amp "$AMP" --data-bank pack/bank \
    --data-families espeak:1,flite:1,festival:0.5,pico:1,kokoro:4 --data-clean-until 0 --data-single-until 0 \
    --data-single-fraction 0.3 --data-min-seconds 3.0 --data-max-seconds 14.0 --data-max-overlap 0.4 \
    --data-noise-prob 0.5 --data-reverb-prob 0.3 --data-speed-prob 0.6 --data-eq-prob 0.4 --data-quiet-prob 0.3 \
    --data-codec-prob 0.3 --data-floor-prob 0.8 --data-band-prob 0.2 --data-warp-prob 0.8 --data-warp-range 0.1 \
    --data-dev-sessions 16 --data-same-family-prob 0.8 --loss-latency-weight 0.05 --loss-latency-tolerance 3 \
    --loss-fastemit-lambda 0.0 --loss-prune-range 5 --loss-simple-scale 0.5 --loss-ctc-weight 0.5 \
    --loss-prune-warmup 2000 "$@" >>"$OUT/train.log" 2>&1 || echo "model.train exited with status $?"
  tr '\r' '\n' <"$OUT/train.log" | grep -v '^train: ' | tail -n 20
}

# probe: 60 steps (inside the warm-up, whose rate does not depend on the total), logged every 10
train 100000 --stop-at 60 --log-every 10 --save-every 60
if [ ! -d "$RUN/last" ] && [ "$AMP" != off ]; then  # e.g. an op without a bfloat16 kernel on this GPU
  echo "the probe failed under --amp $AMP; again in float32"
  AMP=off
  train 100000 --stop-at 60 --log-every 10 --save-every 60
fi
# seconds per step between steps 20 and 60, from the log (elapsed = audio seen / audio per second in one run)
steps=$("$PYTHON" - "$RUN/log.jsonl" "$start" "$TRAIN_SECONDS" <<'EOF'
import json, sys, time
recs = {r["step"]: r for r in map(json.loads, open(sys.argv[1])) if "audio_per_second" in r}
elapsed = {s: r["audio_seen"] / r["audio_per_second"] for s, r in recs.items()}
per_step = (elapsed[60] - elapsed[20]) / 40
left = int(sys.argv[3]) - (time.time() - int(sys.argv[2])) - 30  # the resumed run's start-up
print(max(61, 60 + int(left / per_step)))
print(f"probe: {per_step:.3f} s per step, {left:.0f} s left", file=sys.stderr)
EOF
)
echo "training to step $steps"
every=$(((steps - 60) / 25 > 10 ? (steps - 60) / 25 : 10))
minutes=$("$PYTHON" -c "print(($TRAIN_SECONDS - $(date +%s) + $start) / 60)")
train "$steps" --log-every 20 --save-every "$every" --max-minutes "$minutes"

"$PYTHON" - "$RUN" "$OUT" <<'EOF'
import sys
from pathlib import Path
from model.average import average_checkpoints
from model.checkpoint import WEIGHTS, save_model
run, out = Path(sys.argv[1]), Path(sys.argv[2])
snaps = sorted(run.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[-3:]
print("averaging", [p.name for p in snaps])
for name, dirs in (("avg", snaps), ("last", snaps[-1:])):
    save_model(average_checkpoints(dirs), out / name, half=True)
    (out / name / WEIGHTS).rename(out / f"{name}.half.safetensors")
    (out / name / "config.json").unlink()
    (out / name).rmdir()
EOF
cp "$RUN/last/config.json" "$RUN/log.jsonl" "$RUN/run_config.json" "$OUT/"
cd "$OUT"
for f in avg last; do split -b 15M "$f.half.safetensors" "$f.half.part-" && rm "$f.half.safetensors"; done
ls -la "$OUT"
