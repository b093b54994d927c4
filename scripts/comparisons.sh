#!/bin/bash
# Equal-budget comparison runs behind the comparison tables of docs/model-history.md (one CPU core each; about 30-60 min a run).
#
# Stage 1 (from scratch): the recipe of the bundled model's first stage (exp/sts5), stopped at step 1650 like it,
# once without the natural voices (Kokoro, Pico) and once as a one-channel baseline (no separator).
# Stage 2: the one-channel baseline continued with exactly the settings of the bundled model's second stage
# (exp/sts6), so that base1ch2/step-N and sts6/step-N have seen the same sessions for the same number of steps.
# Then: sts-eval and model.devloss on the checkpoints (commands in README "Data, training, evaluation").
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
STAGE1="--init scratch --threads 1 --steps 2000 --stop-at 1650 --batch-size 8 --lr 2e-3 --warmup 150 --min-lr-ratio 0.05
  --save-every 50 --keep-snapshots 5 --eval-every 100 --seed 0 --data-clean-until 500 --data-single-until 400
  --data-single-fraction 0.3 --data-min-seconds 3 --data-max-seconds 8 --data-dev-sessions 16 --loss-ctc-weight 0.5
  --loss-prune-warmup 2000"
STAGE2="--threads 1 --lr 1.5e-3 --warmup 200 --steps 7000 --save-every 250 --keep-snapshots 40 --eval-every 250
  --data-clean-until 0 --data-single-until 0 --data-min-seconds 3 --data-max-seconds 10 --loss-ctc-weight 0.5"
ALL=espeak:1,flite:1,festival:0.5,pico:1,kokoro:2
mkdir -p exp/configs
.venv/bin/python - <<'PY'
import json
c = json.load(open("model/pretrained/config.json"))
c["streaming"].pop("blank_penalty", None)
json.dump(c, open("exp/configs/small.json", "w"), indent=1)
c["model"]["num_channels"], c["name"] = 1, "sts-lstm-small-1ch"
json.dump(c, open("exp/configs/small-1ch.json", "w"), indent=1)
PY
# shellcheck disable=SC2086
.venv/bin/python -m model.train --out exp/sts5 $STAGE1 --model-config exp/configs/small.json --data-families $ALL
.venv/bin/python -m model.train --out exp/nonat $STAGE1 --model-config exp/configs/small.json \
  --data-families espeak:1,flite:1,festival:0.5
.venv/bin/python -m model.train --out exp/base1ch $STAGE1 --model-config exp/configs/small-1ch.json --data-families $ALL
.venv/bin/python -m model.train --out exp/sts6 --init exp/sts5/step-1650 $STAGE2 --data-families $ALL
.venv/bin/python -m model.train --out exp/base1ch2 --init exp/base1ch/step-1650 $STAGE2 --data-families $ALL

# Separator ablation from the trained model (session 7): the bundled model without its separator vs the bundled
# model itself, each trained 2,500 steps more on the same data stream (one core each; compare step-2500). The
# numbers in docs/model-history.md started from the stage-6 bundle (git show 317e2ae:model/pretrained/...); "bundled" is the current.
.venv/bin/python -m model.baseline bundled exp/base12_init
ABLATE="--workers 1 --threads 1 --lr 1e-3 --warmup 150 --steps 4000 --stop-at 2500 --seed 7 --save-every 250
  --keep-snapshots 40 --eval-every 500 --data-clean-until 0 --data-single-until 0 --data-min-seconds 3
  --data-max-seconds 14 --loss-ctc-weight 0.5 --data-speed-prob 0.6 --data-eq-prob 0.4
  --data-families espeak:1,flite:1,festival:0.5,pico:1,kokoro:4"
.venv/bin/python -m model.train --out exp/sts12 --init bundled $ABLATE &
.venv/bin/python -m model.train --out exp/base12 --init exp/base12_init $ABLATE
wait
