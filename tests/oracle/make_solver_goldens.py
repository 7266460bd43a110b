"""Solver trajectory goldens from real Caffe (pycaffe's solver), for tests/test_solver_parity.py.

Re-run from /work/main:  /work/shared/oracle/caffe-run python3 tests/oracle/make_solver_goldens.py

Writes tests/golden/solver/:
  data.h5            32 samples (data 32x1x12x12 float32, label 32) from a seeded RandomState, read by an
                     HDF5Data layer with batch 8 (4 batches, cycled: deterministic, no shuffling)
  net.prototxt       the tiny net template (conv 4ch 5x5 -> max pool 2 -> relu -> ip 16 -> relu -> ip 10
                     -> SoftmaxWithLoss); '@SOURCE@' is the HDF5 source list, '@P_<layer>@' the param specs
  init.caffemodel    initial weights written by Caffe (xavier fillers, random_seed 1701)
  cases.json         case name -> {"solver": extra solver text, "params": {layer: param text}}
  <case>.npz         loss (100 values: net.blobs['loss'] after each solver.step(1)), w_<layer>_<i> finals
  snap_<case>_iter_48.caffemodel/.solverstate   Caffe snapshots at iteration 48 of some cases

Check mode (writes no golden): caffe-run python3 tests/oracle/make_solver_goldens.py --restore-ours DIR
restores DIR/ours_<case>_iter_48.solverstate (written by recaffe, see tests/test_solver_snapshot.py's
docstring) in real Caffe for each snapshot case found, continues to 100 and prints the largest relative
difference from Caffe's uninterrupted losses.
"""
import json
import os
import shutil
import tempfile

import h5py
import numpy as np
import caffe

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "solver")
ITERS = 100
SNAP_AT = 48

NET = """name: "tiny"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "@SOURCE@" batch_size: 8 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" @P_conv1@
  convolution_param { num_output: 4 kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" @P_ip1@
  inner_product_param { num_output: 16 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu2" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" @P_ip2@
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

BASE = 'base_lr: 0.02 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed" display: 0 max_iter: 100 solver_mode: CPU'
MULTS = {"conv1": "param { lr_mult: 2 decay_mult: 0 } param { lr_mult: 0.5 decay_mult: 3 }",
         "ip1": "param { lr_mult: 0.5 decay_mult: 2 } param { lr_mult: 1 decay_mult: 0 }"}
FROZEN = {"conv1": "param { lr_mult: 0 } param { lr_mult: 0 }"}

CASES = {
    "sgd": (BASE, {}),
    "nesterov": (BASE + ' type: "Nesterov"', {}),
    "adagrad": ('base_lr: 0.01 weight_decay: 0.0005 lr_policy: "fixed" type: "AdaGrad" max_iter: 100', {}),
    "rmsprop": ('base_lr: 0.002 weight_decay: 0.0005 lr_policy: "fixed" type: "RMSProp" rms_decay: 0.98 '
                'max_iter: 100', {}),
    "adadelta": ('base_lr: 1.0 momentum: 0.95 delta: 1e-6 weight_decay: 0.0005 lr_policy: "fixed" '
                 'type: "AdaDelta" max_iter: 100', {}),
    "adam": ('base_lr: 0.002 momentum: 0.9 momentum2: 0.999 delta: 1e-8 weight_decay: 0.0005 '
             'lr_policy: "fixed" type: "Adam" max_iter: 100', {}),
    "step": (BASE.replace('"fixed"', '"step" gamma: 0.5 stepsize: 30'), {}),
    "exp": (BASE.replace('"fixed"', '"exp" gamma: 0.98'), {}),
    "inv": (BASE.replace('"fixed"', '"inv" gamma: 0.01 power: 0.75'), {}),
    "multistep": (BASE.replace('"fixed"', '"multistep" gamma: 0.5 stepvalue: 20 stepvalue: 50 stepvalue: 80'), {}),
    "poly": (BASE.replace('"fixed"', '"poly" power: 1.5'), {}),
    "sigmoid": (BASE.replace('"fixed"', '"sigmoid" gamma: 0.05 stepsize: 50'), {}),
    "iter_size2": (BASE + " iter_size: 2", {}),
    "clip": (BASE + " clip_gradients: 0.5", {}),
    "clip_iter_size2": (BASE + " clip_gradients: 0.8 iter_size: 2", {}),
    "l1": (BASE.replace("weight_decay: 0.0005", "weight_decay: 0.001") + ' regularization_type: "L1"', {}),
    "mults": (BASE, MULTS),
    "frozen": (BASE, FROZEN),
    "adagrad_frozen": ('base_lr: 0.01 weight_decay: 0.0005 lr_policy: "fixed" type: "AdaGrad" max_iter: 100',
                       FROZEN),
    "adam_iter_size2": ('base_lr: 0.002 momentum: 0.9 weight_decay: 0.0005 lr_policy: "multistep" gamma: 0.5 '
                        'stepvalue: 30 stepvalue: 60 type: "Adam" max_iter: 100 iter_size: 2', MULTS),
}
SNAPSHOT_CASES = ("sgd", "adam", "adadelta", "multistep")


def net_text(source, params):
    text = NET.replace("@SOURCE@", source)
    for layer in ("conv1", "ip1", "ip2"):
        text = text.replace("@P_%s@" % layer, params.get(layer, ""))
    return text


def write_solver(folder, name, source, params, solver_text):
    """Write folder/<name>_net.prototxt (the tiny net on ``source`` with the layer ``params``) and
    folder/<name>_solver.prototxt ('net: "<that file>"', a newline, then ``solver_text``); return the
    solver file's path."""
    net_path = os.path.join(folder, name + "_net.prototxt")
    with open(net_path, "w") as f:
        f.write(net_text(source, params))
    path = os.path.join(folder, name + "_solver.prototxt")
    with open(path, "w") as f:
        f.write('net: "%s"\n%s' % (net_path, solver_text))
    return path


def make_data(path):
    rng = np.random.RandomState(20261123)
    label = rng.randint(0, 10, size=32).astype(np.float32)
    data = rng.randn(32, 1, 12, 12).astype(np.float32) * 0.5
    for i, c in enumerate(label.astype(int)):   # a learnable signal: a class-dependent bright patch
        data[i, 0, c % 5 * 2:c % 5 * 2 + 3, c // 5 * 6:c // 5 * 6 + 4] += 1.5
    with h5py.File(path, "w") as f:   # no timestamps: re-runs write the same bytes
        f.create_dataset("data", data=data, track_times=False)
        f.create_dataset("label", data=label, track_times=False)


def run_case(tmp, name, solver_extra, params, source):
    solver = caffe.get_solver(write_solver(tmp, name, source, params,
                                           '%s\nsnapshot_prefix: "snap_%s"\n' % (solver_extra, name)))
    solver.net.copy_from(os.path.join(OUT, "init.caffemodel"))
    losses = []
    for it in range(ITERS):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
        if it + 1 == SNAP_AT and name in SNAPSHOT_CASES:
            cwd = os.getcwd()
            os.chdir(tmp)   # learned_net is stored as written: keep it a bare file name
            solver.snapshot()
            os.chdir(cwd)
            for ext in (".caffemodel", ".solverstate"):
                shutil.copy(os.path.join(tmp, "snap_%s_iter_%d%s" % (name, SNAP_AT, ext)), OUT)
    out = {"loss": np.array(losses, dtype=np.float64)}
    for layer, blobs in solver.net.params.items():
        for i, b in enumerate(blobs):
            out["w_%s_%d" % (layer, i)] = b.data.copy()
    np.savez_compressed(os.path.join(OUT, name + ".npz"), **out)
    print(name, losses[0], losses[-1])


def caffe_cli_log(tmp, source):
    """`caffe train` on the sgd case (display 10, tests every 20, snapshot at the end): its glog lines
    -> caffe_train.log, for the log-format test (and the log parser)."""
    import subprocess
    extra, params = CASES["sgd"]
    solver_path = write_solver(
        tmp, "cli", source, params, extra.replace("display: 0 max_iter: 100", "display: 10 max_iter: 40") + "\n"
        + 'test_iter: 2 test_interval: 20 test_compute_loss: true average_loss: 3 snapshot_prefix: "%s/cli"\n' % tmp)
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    r = subprocess.run(["caffe", "train", "-solver", solver_path, "-weights", os.path.join(OUT, "init.caffemodel")],
                       stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env, universal_newlines=True, check=True)
    keep = [l.replace(tmp, "TMP") for l in r.stderr.splitlines() if "solver.cpp" in l or "sgd_solver.cpp" in l]
    with open(os.path.join(OUT, "caffe_train.log"), "w") as f:
        f.write("\n".join(keep) + "\n")


def restore_ours(folder):
    tmp = tempfile.mkdtemp()
    source = os.path.join(tmp, "source.txt")
    with open(source, "w") as f:
        f.write(os.path.abspath(os.path.join(OUT, "data.h5")) + "\n")
    for name in SNAPSHOT_CASES:
        state = os.path.join(folder, "ours_%s_iter_%d.solverstate" % (name, SNAP_AT))
        if not os.path.exists(state):
            continue
        extra, params = CASES[name]
        solver = caffe.get_solver(write_solver(tmp, name, source, params, extra + "\n"))
        cwd = os.getcwd()
        os.chdir(folder)
        solver.restore(state)
        os.chdir(cwd)
        losses = []
        while solver.iter < ITERS:
            solver.step(1)
            losses.append(float(solver.net.blobs["loss"].data))
        gold = np.load(os.path.join(OUT, name + ".npz"))["loss"][SNAP_AT:]
        rel = np.max(np.abs(np.array(losses) - gold) / np.abs(gold))
        print("caffe restored ours: %s iter %d -> %d, max rel loss diff vs uninterrupted caffe %.2e"
              % (name, SNAP_AT, solver.iter, rel))
    shutil.rmtree(tmp)


def main():
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--restore-ours":
        caffe.set_mode_cpu()
        return restore_ours(sys.argv[2])
    caffe.set_mode_cpu()
    caffe.set_random_seed(1701)
    os.makedirs(OUT, exist_ok=True)
    make_data(os.path.join(OUT, "data.h5"))
    with open(os.path.join(OUT, "net.prototxt"), "w") as f:
        f.write(NET)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({k: {"solver": s, "params": p} for k, (s, p) in CASES.items()}, f, indent=1, sort_keys=True)
    tmp = "/tmp/recaffe_solver_goldens"   # a fixed path: it is recorded in the snapshots' layer params
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    source = os.path.join(tmp, "source.txt")
    with open(source, "w") as f:
        f.write(os.path.abspath(os.path.join(OUT, "data.h5")) + "\n")
    with open(os.path.join(tmp, "init.prototxt"), "w") as f:
        f.write(net_text(source, {}))
    net = caffe.Net(os.path.join(tmp, "init.prototxt"), caffe.TRAIN)
    net.save(os.path.join(OUT, "init.caffemodel"))
    for name, (extra, params) in CASES.items():
        run_case(tmp, name, extra, params, source)
    caffe_cli_log(tmp, source)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
