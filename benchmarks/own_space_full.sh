#!/bin/bash
# The supernet issue's comparison on the project's own space, with its full settings, on the CPU in pieces.
#
#   bash benchmarks/own_space_full.sh          # from the repository, with the project installed
#
# Stop it at any time (Ctrl-C, kill, the machine going away) and run it again: the supernet resumes from
# its last save (every 10 minutes inside an epoch), the searches from their studies, each retraining from
# its last save; finished pieces are kept in runs/ (the README gives the times). Latencies are cached per CPU model, so a run ended
# on another CPU measures every row again and matches the width again (which may retrain that row). Keep
# THREADS the same in every piece: a resumed run equals an uninterrupted one only at the same thread count.
# Settings fixed on 2026-12-05 before any result (see the README).
# The row width-other-side was added on 2026-12-06 after the run, when no width multiplier measured within 3 %
# of the supernet winner (see search_vs_baselines.py); it only adds a row and changes no other.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
THREADS=${THREADS:-2}
ARGS=(--supernet runs/supernet_cse_cifar --supernet-val-images 1000 --only supernet tpe width-matched width-other-side
      --seeds 0 1 2 3 4 --threads "$THREADS" --work runs/svb-full --name supernet)
echo "== $(date -u +%FT%TZ) the supernet: all of CIFAR-10, 5 epochs"
nas supernet train --space search_spaces/mobilenet_cse_cifar.yaml --data ../shared/datasets/cifar10 \
    --out runs/supernet_cse_cifar --subset 0 --epochs 5 --batch-size 128 --lr 0.04 --warmup-epochs 1 \
    --threads "$THREADS"
echo "== $(date -u +%FT%TZ) the searches and the 15 retrainings"
python benchmarks/search_vs_baselines.py "${ARGS[@]}" --train-only
echo "== $(date -u +%FT%TZ) the latencies, on a quiet machine, and the table"
python benchmarks/search_vs_baselines.py "${ARGS[@]}"
echo "== $(date -u +%FT%TZ) done: benchmarks/results/search_vs_baselines_supernet.md"
