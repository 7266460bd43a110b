"""Golden cases for the neuron (element-wise) layers, computed by real Caffe.

Re-run from the repository root (idempotent; overwrites tests/golden/layers/neuron_*.npz):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_layers_neuron.py

Inputs are seeded gaussians with values placed exactly on the kinks (0 for ReLU/AbsVal/ELU, the
bounds for Clip, the threshold for Threshold). Threshold has no backward in Caffe, so it goes through
make_layers_common.partial_case (a net without force_backward).
"""
import os
import sys

import caffe
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layer_oracle import case  # noqa: E402
from make_layers_common import partial_case  # noqa: E402

SHAPE = (2, 3, 4, 5)


def gauss(seed, shape=SHAPE, scale=1.0):
    return (np.random.RandomState(seed).randn(*shape) * scale).astype(np.float32)


def with_values(x, values, seed=1):
    """x with the given values written at seeded distinct positions (several copies each)."""
    x = x.copy()
    flat = x.reshape(-1)
    pos = np.random.RandomState(seed + 100).permutation(flat.size)
    k = 0
    for v in values:
        for _ in range(3):
            flat[pos[k]] = v
            k += 1
    return x


def positive(seed, shape=SHAPE):
    return (np.abs(gauss(seed, shape)) + 0.1).astype(np.float32)


def neuron(name, type_, param=""):
    return 'name: "%s" type: "%s" bottom: "x" top: "y" %s' % (name, type_, param)


def main():
    kink0 = with_values(gauss(1), [0.0])
    # ReLU / leaky ReLU, inputs exactly at 0
    case("neuron_relu", neuron("relu", "ReLU"), [kink0])
    case("neuron_relu_slope", neuron("relu", "ReLU", "relu_param { negative_slope: 0.1 }"), [kink0])
    case("neuron_relu_negslope", neuron("relu", "ReLU", "relu_param { negative_slope: -0.7 }"), [kink0], seed=1)
    # PReLU: per channel, shared, 2-D bottom, default filler
    case("neuron_prelu", neuron("prelu", "PReLU"), [kink0])
    # (a 0-axis blob: layer_oracle's random params assume >= 1 axis, so give the slope)
    case("neuron_prelu_shared", neuron("prelu", "PReLU", "prelu_param { channel_shared: true }"), [kink0],
         params="given", param_values=[np.float32(-0.35)])
    case("neuron_prelu_2d", neuron("prelu", "PReLU"), [with_values(gauss(3, (4, 6)), [0.0])], seed=3)
    case("neuron_prelu_filler", neuron("prelu", "PReLU"), [gauss(4, (2, 3, 2))], params="filler")
    case("neuron_prelu_given_filler",
         neuron("prelu", "PReLU", 'prelu_param { filler { type: "constant" value: -0.3 } }'),
         [gauss(5, (2, 3, 2))], params="filler")
    # ELU
    case("neuron_elu", neuron("elu", "ELU"), [kink0])
    case("neuron_elu_alpha", neuron("elu", "ELU", "elu_param { alpha: 0.4 }"), [with_values(gauss(6), [0.0])])
    # Sigmoid, TanH, BNLL (with large magnitudes), AbsVal (zeros)
    big = with_values(gauss(7, scale=3.0), [0.0, 30.0, -30.0, 60.0, -60.0])
    case("neuron_sigmoid", neuron("sig", "Sigmoid"), [big])
    case("neuron_tanh", neuron("tanh", "TanH"), [big])
    case("neuron_bnll", neuron("bnll", "BNLL"), [big])
    case("neuron_absval", neuron("abs", "AbsVal"), [kink0])
    # Swish
    case("neuron_swish", neuron("swish", "Swish"), [big])
    case("neuron_swish_beta", neuron("swish", "Swish", "swish_param { beta: 2.5 }"), [kink0])
    # Clip: values exactly at both bounds; min > max (Caffe outputs min everywhere)
    clip_x = with_values(gauss(8), [-0.5, 0.75, 0.0])
    case("neuron_clip", neuron("clip", "Clip", "clip_param { min: -0.5 max: 0.75 }"), [clip_x])
    case("neuron_clip_pos", neuron("clip", "Clip", "clip_param { min: 0 max: 6 }"),
         [with_values(gauss(9, scale=4.0), [0.0, 6.0])])
    case("neuron_clip_inverted", neuron("clip", "Clip", "clip_param { min: 0.5 max: -0.5 }"), [clip_x])
    # Threshold: forward only (no backward in Caffe)
    partial_case("neuron_threshold", neuron("thr", "Threshold"), [kink0])
    partial_case("neuron_threshold_03", neuron("thr", "Threshold", "threshold_param { threshold: 0.3 }"),
                 [with_values(gauss(10), [0.3])])
    # Power
    g = gauss(11)
    pos = positive(12)
    case("neuron_power_default", neuron("pow", "Power"), [g])
    case("neuron_power_affine", neuron("pow", "Power", "power_param { power: 1 scale: 2 shift: -1 }"), [g])
    case("neuron_power_sq", neuron("pow", "Power", "power_param { power: 2 }"), [g])
    case("neuron_power_sq_affine", neuron("pow", "Power", "power_param { power: 2 scale: 0.5 shift: 1 }"), [g])
    case("neuron_power_sqrt", neuron("pow", "Power", "power_param { power: 0.5 }"), [pos])
    case("neuron_power_sqrt_affine", neuron("pow", "Power", "power_param { power: 0.5 scale: 2 shift: 0.3 }"),
         [pos])
    case("neuron_power_cube", neuron("pow", "Power", "power_param { power: 3 scale: -1 shift: 0.5 }"), [g])
    case("neuron_power_inv_scaled", neuron("pow", "Power", "power_param { power: -1.5 scale: 3 }"), [pos])
    case("neuron_power_zero", neuron("pow", "Power", "power_param { power: 0 scale: 2 shift: 1 }"), [g])
    case("neuron_power_scale0", neuron("pow", "Power", "power_param { power: 3 scale: 0 shift: 1.5 }"), [g])
    # Exp
    case("neuron_exp", neuron("exp", "Exp"), [g])
    case("neuron_exp_e_affine", neuron("exp", "Exp", "exp_param { base: -1 scale: -1.5 shift: 0.3 }"), [g])
    case("neuron_exp_base2", neuron("exp", "Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }"), [g])
    case("neuron_exp_base10", neuron("exp", "Exp", "exp_param { base: 10 }"), [g * 0.5])
    # Log (positive arguments)
    case("neuron_log", neuron("log", "Log"), [pos])
    case("neuron_log_e_affine", neuron("log", "Log", "log_param { scale: 0.5 shift: 2 }"), [g])
    case("neuron_log_base2", neuron("log", "Log", "log_param { base: 2 scale: 3 shift: 0.5 }"), [pos])
    case("neuron_log_base10", neuron("log", "Log", "log_param { base: 10 }"), [pos])
    # Dropout: TEST identity; the layer's own phase wins over the net's; ratio 0 in TRAIN
    case("neuron_dropout_test", neuron("drop", "Dropout"), [g], phase="TEST")
    case("neuron_dropout_layer_phase", neuron("drop", "Dropout", "phase: TEST dropout_param { dropout_ratio: 0.3 }"),
         [g], phase="TRAIN")
    case("neuron_dropout_train_ratio0", neuron("drop", "Dropout", "dropout_param { dropout_ratio: 0 }"),
         [g], phase="TRAIN")
    # In place (top == bottom): Caffe's backward then reads the top where it reads the bottom
    inplace = 'name: "%s" type: "%s" bottom: "x" top: "x" %s'
    case("neuron_inplace_relu_negslope", inplace % ("relu", "ReLU", "relu_param { negative_slope: -0.7 }"), [kink0])
    case("neuron_inplace_relu", inplace % ("relu", "ReLU", "relu_param { negative_slope: 0.2 }"), [kink0])
    case("neuron_inplace_elu_negalpha", inplace % ("elu", "ELU", "elu_param { alpha: -0.5 }"), [kink0])
    case("neuron_inplace_clip", inplace % ("clip", "Clip", "clip_param { min: -0.5 max: 0.75 }"), [clip_x])
    case("neuron_inplace_bnll", inplace % ("bnll", "BNLL", ""), [big])
    case("neuron_inplace_log", inplace % ("log", "Log", "log_param { base: 2 scale: 3 shift: 0.5 }"), [pos])
    case("neuron_inplace_power", inplace % ("pow", "Power", "power_param { power: 0.5 scale: 2 shift: 0.3 }"), [pos])
    case("neuron_inplace_power_noshift", inplace % ("pow", "Power", "power_param { power: 3 scale: 2 }"), [g])
    case("neuron_inplace_power_sq", inplace % ("pow", "Power", "power_param { power: 2 scale: 0.5 shift: 1 }"), [g])
    case("neuron_inplace_power_affine", inplace % ("pow", "Power", "power_param { scale: 2 shift: -1 }"), [g])
    case("neuron_inplace_power_default", inplace % ("pow", "Power", ""), [g])
    case("neuron_inplace_sigmoid", inplace % ("sig", "Sigmoid", ""), [big])
    case("neuron_inplace_exp", inplace % ("exp", "Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }"), [g])
    case("neuron_inplace_prelu", inplace % ("prelu", "PReLU", ""), [kink0])
    # TRAIN with a random mask: compared by distribution (values and kept fraction); Caffe's RNG is
    # seeded so that re-running this script rewrites the same file
    caffe.set_random_seed(1701)
    case("neuron_dropout_train_dist", neuron("drop", "Dropout", "dropout_param { dropout_ratio: 0.3 }"),
         [np.ones((1000,), np.float32)], phase="TRAIN")


if __name__ == "__main__":
    main()
