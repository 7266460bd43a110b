"""pycaffe's Solver surface (test_solver.py's kind): get_solver's class per type, apply_update (one update
from hand-set diffs, then iter + 1), lr, clear_param_diffs, add_callback, share_weights.
run(caffe, work) -> {key: array}:

  class_<type>           type(get_solver(file)).__name__ for each solver type
  apply_<k>_w, _b        ip's blobs after the k-th apply_update from hand-set diffs; apply_iter, apply_lr
  step_*                 after feeding data and step(3): weights, iter, lr, loss
  cleared                a held weight diff after net.clear_param_diffs()
  calls                  (kind, iter, sum of |ip weight diff|) of every callback over step(2)
  shared_w               a TEST net's ip weights after share_weights and one more step
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _recipe import array, fill_params, write  # noqa: E402

NET = """name: 'tiny'
layer { name: 'data' type: 'Input' top: 'data' top: 'label' input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' inner_product_param { num_output: 2 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""
SOLVER = """net: '%s' base_lr: 0.1 lr_policy: 'step' gamma: 0.5 stepsize: 2 momentum: %s weight_decay: 0.01
display: 0 max_iter: 100 snapshot_prefix: '%s' type: '%s'
"""
TYPES = (("SGD", 0.9), ("Nesterov", 0.9), ("AdaGrad", 0), ("RMSProp", 0), ("AdaDelta", 0.95), ("Adam", 0.9))


def _solver(caffe, work, kind="SGD", momentum=0.9):
    net = write(work, "tiny.prototxt", NET)
    path = write(work, "solver_%s.prototxt" % kind, SOLVER % (net, momentum, os.path.join(work, "snap"), kind))
    return caffe.get_solver(path), net


def _feed(net):
    net.blobs["data"].data[...] = array(31, (4, 3))
    net.blobs["label"].data[...] = np.array([0, 1, 1, 0])


def run(caffe, work):
    out = {}
    for kind, momentum in TYPES:
        out["class_" + kind] = np.array(type(_solver(caffe, work, kind, momentum)[0]).__name__)
    solver, net_file = _solver(caffe, work)
    net = solver.net
    fill_params(net, 32)
    for k in range(2):
        for i, blob in enumerate(net.params["ip"]):
            blob.diff[...] = array(33 + 2 * k + i, blob.diff.shape)
        solver.apply_update()
        out["apply_%d_w" % k], out["apply_%d_b" % k] = [b.data.copy() for b in net.params["ip"]]
    out["apply_iter"], out["apply_lr"] = np.array(solver.iter), np.array(solver.lr)
    _feed(net)
    solver.step(3)
    out["step_w"] = net.params["ip"][0].data.copy()
    out["step_iter"], out["step_lr"] = np.array(solver.iter), np.array(solver.lr)
    out["step_loss"] = np.array(net.blobs["loss"].data)
    held = net.params["ip"][0].diff
    net.clear_param_diffs()
    out["cleared"] = held.copy()
    calls = []
    solver.add_callback(lambda: calls.append((0, solver.iter, 0.0)),
                        lambda: calls.append((1, solver.iter, float(np.abs(net.params["ip"][0].diff).sum()))))
    solver.step(2)
    out["calls"] = np.array(calls)
    test_net = caffe.Net(net_file, caffe.TEST)
    solver.share_weights(test_net)
    solver.step(1)
    out["shared_w"] = test_net.params["ip"][0].data.copy()
    out["shared_same"] = np.array(np.array_equal(test_net.params["ip"][0].data, net.params["ip"][0].data))
    return out
