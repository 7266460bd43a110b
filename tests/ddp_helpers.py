"""Helpers for the data-parallel tests (no tests here): a LeNet-shaped net on a generated LMDB, its
solver, and runners for one process and for N ranks (plain processes with torchrun's environment)."""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable

NET = """name: "ddp_lenet"
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  transform_param {{ scale: 0.00390625 mirror: {mirror} {crop} }}
  data_param {{ source: "{db}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
  transform_param {{ scale: 0.00390625 {crop} }}
  data_param {{ source: "{db}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
  convolution_param {{ num_output: 8 kernel_size: 5 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
  convolution_param {{ num_output: 12 kernel_size: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
  inner_product_param {{ num_output: 32 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
  inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" include {{ phase: TEST }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

SOLVER = """net: "{net}"
base_lr: 0.05 momentum: 0.9 weight_decay: 0.0005
lr_policy: "inv" gamma: 0.0001 power: 0.75
display: {display} max_iter: {iters} iter_size: {iter_size} random_seed: 1
snapshot: {snapshot} snapshot_prefix: "{prefix}" snapshot_after_train: true
{extra}
"""


def make_db(folder, n=256, size=28):
    from examples.synthetic_data import write_lmdb
    os.makedirs(str(folder), exist_ok=True)
    db = os.path.join(str(folder), "db")
    if not os.path.exists(db):
        write_lmdb(db, n, 1, size, size, seed=3)
    return db


def write_solver(folder, db, iter_size=1, iters=12, batch=16, mirror=True, crop=24, display=1, snapshot=0,
                 extra="", name="run"):
    """net + solver files in folder/name/; returns the solver path."""
    out = os.path.join(str(folder), name)
    os.makedirs(out, exist_ok=True)
    net = os.path.join(out, "net.prototxt")
    with open(net, "w") as f:
        f.write(NET.format(db=db, batch=batch, mirror="true" if mirror else "false",
                           crop=f"crop_size: {crop}" if crop else ""))
    path = os.path.join(out, "solver.prototxt")
    with open(path, "w") as f:
        f.write(SOLVER.format(net=net, display=display, iters=iters, iter_size=iter_size, snapshot=snapshot,
                              prefix=os.path.join(out, "snap"), extra=extra))
    return path


def env(**extra):
    e = dict(os.environ, OMP_NUM_THREADS="1", RECAFFE_DATA_WORKERS="0", PYTHONPATH=ROOT)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        e.pop(k, None)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def train_cmd(solver, *flags):
    """The train tool, or (flags == ("worker", OUT)) tests/ddp_worker.py writing every rank's weights."""
    if flags[:1] == ("worker",):
        return [PY, os.path.join(ROOT, "tests", "ddp_worker.py"), solver, flags[1]]
    return [PY, "-m", "recaffe.tools.train", f"-solver={solver}", *flags]


def run_one(solver, *flags, timeout=60):
    """One process; returns (returncode, stderr text)."""
    p = subprocess.run(train_cmd(solver, *flags), env=env(), capture_output=True, text=True, timeout=timeout,
                       cwd=ROOT)
    return p.returncode, p.stderr


def start_ranks(solver, world=2, *flags, timeout_s=None, port=None):
    """``world`` processes with torchrun's environment (env:// rendezvous); returns the Popen list."""
    from recaffe.solver.launch import free_port
    port = port or free_port()
    extra = {} if timeout_s is None else {"RECAFFE_DIST_TIMEOUT": timeout_s}
    return [subprocess.Popen(train_cmd(solver, *flags), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env(RANK=r, LOCAL_RANK=r, WORLD_SIZE=world, LOCAL_WORLD_SIZE=world,
                                                MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **extra))
            for r in range(world)]


def run_ranks(solver, world=2, *flags, timeout=90):
    """Run ``world`` ranks to the end; returns [(returncode, stderr)] by rank."""
    procs = start_ranks(solver, world, *flags)
    out = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append((p.returncode, err))
    return out


def weights(path):
    """{layer.i: array} of a weights file."""
    import torch
    from recaffe.netspec.net.net import Net
    net = Net(os.path.join(os.path.dirname(path), "net.prototxt"), phase="TRAIN")
    net.load_weights(path)
    return {k: v.numpy().copy() for k, v in net.caffe_state_dict().items()}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def log_lines(text, key):
    return [line.split("] ", 1)[1] for line in text.splitlines() if "] " in line and key in line]


def randomize(net, seed=1):
    """He-normal weights, small biases, BatchNorm statistics mean U(-0.1, 0.1), var U(0.5, 1.5)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t, layer in zip(net.layer_types, net.layers):
            for i, p in enumerate(layer.blobs):
                if t == "BatchNorm":
                    (p.uniform_(-0.1, 0.1, generator=g) if i == 0 else p.uniform_(0.5, 1.5, generator=g)
                     if i == 1 else p.fill_(1))
                elif p.dim() > 1:
                    p.normal_(0, (2.0 / p[0].numel()) ** 0.5, generator=g)
                else:
                    p.uniform_(-0.1, 0.1, generator=g)
    return net
