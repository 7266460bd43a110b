#!/usr/bin/env bash
# End to end on generated data: images -> LMDB (tools/convert_imageset) -> LeNet (models/lenet.py, the
# BVLC notebook's net) -> tools/train -> tools/test -> tools/plot_training_log.
#   bash examples/lenet_e2e.sh [WORKDIR] [MAX_ITER]      (run from the repository root)
set -euo pipefail
W="${1:-/tmp/lenet_e2e}"
ITERS="${2:-300}"
PY="${PYTHON:-python}"
rm -rf "$W" && mkdir -p "$W"

$PY -m examples.synthetic_data images "$W/train" 640 1 28 28 1
$PY -m examples.synthetic_data images "$W/test" 200 1 28 28 2
$PY -m recaffe.tools.convert_imageset --gray --quiet "$W/train/" "$W/train/list.txt" "$W/train_lmdb"
$PY -m recaffe.tools.convert_imageset --gray --quiet "$W/test/" "$W/test/list.txt" "$W/test_lmdb"

$PY - "$W" <<'PYEOF'
import sys
from recaffe.models.lenet import lenet
w = sys.argv[1]
lenet(f"{w}/train_lmdb", 64, f"{w}/train.prototxt")
lenet(f"{w}/test_lmdb", 100, f"{w}/test.prototxt")
PYEOF

cat > "$W/solver.prototxt" <<SOLVER
train_net: "$W/train.prototxt"
test_net: "$W/test.prototxt"
test_iter: 2
test_interval: 100
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 50
max_iter: $ITERS
snapshot: 0
snapshot_prefix: "$W/lenet"
random_seed: 1
SOLVER

$PY -m recaffe.tools.train -solver="$W/solver.prototxt" 2>&1 | tee "$W/train.log"
$PY -m recaffe.tools.test -model="$W/test.prototxt" -weights="$W/lenet_iter_$ITERS.caffemodel" -iterations=2 2>&1 \
  | tee "$W/test.log" | grep -v "Batch"
$PY -m recaffe.tools.plot_training_log "$W/curve.png" "$W/train.log"
echo "lenet_e2e: logs, snapshot and curve.png in $W"
