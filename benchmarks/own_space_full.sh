#!/bin/bash
# The supernet issue's comparison on the project's own space, with its full settings, on the CPU in pieces.
#
#   bash benchmarks/own_space_full.sh          # from the repository, with the project installed
#
# Stop it at any time (Ctrl-C, kill, the machine going away) and run it again: the supernet resumes after
# its last finished epoch (about 70-90 min each on 2 cores), the searches from their studies, each retraining
# from its last epoch; finished pieces are kept in runs/. Latencies are cached per CPU model, so a run ended
# on another CPU measures every row again. Settings fixed on 2026-12-05 before any result (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ARGS=(--supernet runs/supernet_cse_cifar --supernet-val-images 1000 --only supernet tpe width-matched
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
