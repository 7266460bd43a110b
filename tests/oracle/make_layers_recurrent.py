"""Golden cases for RNN, LSTM and LSTMUnit (tests/test_layers_recurrent.py replays them).

Re-run from /work/main (overwrites tests/golden/layers/rnn_*.npz):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_layers_recurrent.py

Sizes are small (T=3 time steps, N=2 streams, hidden 3); weights are seeded gaussians set by
layer_oracle.case. rnn_*_carry cases run two forward passes of one net without expose_hidden to
record how the final state of a pass becomes the initial state of the next.
"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import caffe  # noqa: E402
import layer_oracle  # noqa: E402
from layer_oracle import GOLDEN, case  # noqa: E402

rng = np.random.RandomState(11)


class _RandomState(np.random.RandomState):
    """randn() with no dims returns a 0-d array (layer_oracle.case needs .astype on it)."""

    def randn(self, *shape):
        return np.asarray(super().randn(*shape))


class _NumpyShim:
    random = type("random", (), {"RandomState": _RandomState})

    def __getattr__(self, name):
        return getattr(np, name)


layer_oracle.np = _NumpyShim()


def randn(*shape, scale=1.0):
    return (rng.randn(*shape) * scale).astype(np.float32)


def rec(type_, bottoms, tops, num_output=3, expose=False):
    s = 'name: "r" type: "%s"\n' % type_
    s += "".join('bottom: "%s"\n' % b for b in bottoms) + "".join('top: "%s"\n' % t for t in tops)
    s += "recurrent_param { num_output: %d%s }" % (num_output, " expose_hidden: true" if expose else "")
    return s


T, N, H = 3, 2, 3
CONT = np.array([[0, 0], [1, 1], [1, 0]], np.float32)  # stream 1 restarts at t = 2
CONT_ON = np.array([[1, 0], [1, 1], [0, 1]], np.float32)  # stream 0 continues from h_0 at t = 0


def recurrent_cases(type_, tag):
    x = randn(T, N, 4, scale=0.8)
    x4 = randn(T, N, 2, 2, scale=0.8)
    xs = randn(N, 5, scale=0.8)
    states = ["h0", "c0"] if type_ == "LSTM" else ["h0"]
    finals = ["hT", "cT"] if type_ == "LSTM" else ["hT"]
    init = [randn(1, N, H, scale=0.5) for _ in states]
    case("rnn_%s_basic" % tag, rec(type_, ["x", "cont"], ["y"]), [x, CONT], params="random", seed=1)
    case("rnn_%s_4d_input" % tag, rec(type_, ["x", "cont"], ["y"]), [x4, CONT_ON], params="random", seed=2)
    case("rnn_%s_static" % tag, rec(type_, ["x", "cont", "xs"], ["y"]), [x, CONT, xs], params="random", seed=3)
    case("rnn_%s_expose" % tag, rec(type_, ["x", "cont"] + states, ["y"] + finals, expose=True),
         [x, CONT_ON] + init, params="random", seed=4)
    case("rnn_%s_expose_static" % tag, rec(type_, ["x", "cont", "xs"] + states, ["y"] + finals, expose=True),
         [x, CONT_ON, xs] + init, params="random", seed=5)
    carry_case("rnn_%s_carry" % tag, rec(type_, ["x", "cont"], ["y"]), x, randn(T, N, 4, scale=0.8))


def carry_case(case_id, layer_text, x1, x2):
    """Two forward passes (cont = 1 everywhere): the second starts from the first's final state."""
    cont = np.ones((T, N), np.float32)
    net_text = ('layer { name: "in" type: "Input" top: "x" top: "cont" input_param { shape { dim: %d dim: %d dim: %d } '
                'shape { dim: %d dim: %d } } }\nlayer {\n%s\n}\n' % (T, N, x1.shape[2], T, N, layer_text))
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(net_text)
    try:
        net = caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)
    out = {"layer": np.array(layer_text), "x1": x1, "x2": x2, "cont": cont}
    for i, blob in enumerate(net.params["r"]):
        blob.data[...] = randn(*blob.data.shape, scale=0.8)
        out["param_%d" % i] = blob.data.copy()
    for k, x in (("y1", x1), ("y2", x2)):
        net.blobs["x"].data[...] = x
        net.blobs["cont"].data[...] = cont
        net.forward()
        out[k] = net.blobs["y"].data.copy()
    np.savez(os.path.join(GOLDEN, case_id + ".npz"), **out)


def lstm_unit_cases():
    unit = 'name: "u" type: "LSTMUnit" bottom: "c_prev" bottom: "gates" bottom: "cont" top: "c" top: "h"'
    c_prev, gates = randn(1, 4, H), randn(1, 4, 4 * H, scale=1.5)
    case("rnn_lstmunit", unit, [c_prev, gates, np.array([[0, 1, 1, 0]], np.float32)])
    # non-binary cont: Caffe's forget-gate gradient is f (1 - f) with f already scaled by cont
    case("rnn_lstmunit_soft_cont", unit, [c_prev, gates, np.array([[0.5, 1, 0.25, 2]], np.float32)])


if __name__ == "__main__":
    os.makedirs(GOLDEN, exist_ok=True)
    recurrent_cases("LSTM", "lstm")
    recurrent_cases("RNN", "rnn")
    lstm_unit_cases()
    print("wrote recurrent goldens to", os.path.normpath(GOLDEN))
