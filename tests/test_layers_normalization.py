"""Normalization layers (BatchNorm, MVN) against Caffe goldens
(tests/oracle/make_layers_normalization.py), BatchNorm's moving average over several passes and its
forced lr_mult 0, plus bad-input errors."""
import glob
import os

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from layer_harness import GOLDEN, assert_build_error, build_layer, check_case, load_case
from recaffe.netspec.net.layers import layer_class
from recaffe.protos import caffe_pb2

CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(GOLDEN, "norm_*.npz")))


def test_golden_set_is_complete():
    assert len(CASES) >= 17
    for prefix in ("bn_test", "bn_train", "mvn", "mvn_across", "mvn_mean_only"):
        assert any(c.startswith("norm_" + prefix) for c in CASES), prefix


@pytest.mark.parametrize("case_id", CASES)
def test_parity(case_id):
    check_case(case_id)


def test_train_updates_blobs_and_test_does_not():
    train, test = load_case("norm_bn_train"), load_case("norm_bn_test")
    for i in range(3):
        assert not np.allclose(train["param_after_%d" % i], train["param_%d" % i])
        np.testing.assert_array_equal(test["param_after_%d" % i], test["param_%d" % i])
    z = load_case("norm_bn_test_zero_factor")   # factor 0: mean = var = 0, y = x / sqrt(eps)
    np.testing.assert_allclose(z["top_0"], z["bottom_0"] / np.sqrt(np.float32(1e-5)), rtol=1e-5)


def test_moving_average_over_passes():
    """Caffe's rule (batch_norm_layer.cpp) applied to a second pass from the golden's first one."""
    case = load_case("norm_bn_train_eps_frac")
    lp, layer, _ = build_layer(case)
    x = torch.from_numpy(case["bottom_0"])
    layer(x)
    after1 = [p.detach().clone() for p in layer.blobs]
    for i in range(3):
        np.testing.assert_allclose(after1[i].numpy(), case["param_after_%d" % i], rtol=1e-5, atol=1e-6)
    x2 = x * 2 + 1
    layer(x2)
    lam, m = 0.9, x2.numel() // x2.shape[1]
    mean = x2.mean((0, 2, 3))
    var = ((x2 - mean.reshape(1, -1, 1, 1)) ** 2).mean((0, 2, 3))
    np.testing.assert_allclose(layer.blobs[2].detach().numpy(), lam * after1[2].numpy() + 1, rtol=1e-6)
    np.testing.assert_allclose(layer.blobs[0].detach().numpy(), lam * after1[0].numpy() + mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].detach().numpy(),
                               lam * after1[1].numpy() + m / (m - 1) * var.numpy(), rtol=1e-5)


def build(text, shapes, phase="TEST"):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return layer_class(lp.type, lp.name)(lp, shapes, phase).apply_fillers()


def test_batchnorm_forces_lr_mult_zero():
    layer = build('name: "bn" type: "BatchNorm" bottom: "x" top: "y" param { lr_mult: 0 decay_mult: 0 }',
                  [(2, 3)], "TRAIN")
    assert [p.lr_mult for p in layer.lp.param] == [0, 0, 0]
    assert layer.lp.param[0].decay_mult == 0 and all(not p.requires_grad for p in layer.blobs)


BAD = [
    ('name: "bn" type: "BatchNorm" bottom: "x" top: "y" param { lr_mult: 1 }', [(2, 3)], "lr_mult"),
    ('name: "bn" type: "BatchNorm" bottom: "x" top: "y"', [(5,)], "at least 2 axes"),
    ('name: "bn" type: "BatchNorm" bottom: "x" bottom: "z" top: "y"', [(2, 3), (2, 3)], "exactly 1 bottom"),
    ('name: "mvn" type: "MVN" bottom: "x" top: "y"', [(2, 3, 2, 2, 2)], "at most 4 axes"),
]


@pytest.mark.parametrize("text,shapes,what", BAD)
def test_bad_input_names_the_layer(text, shapes, what):
    assert_build_error(build, text, shapes, what)
