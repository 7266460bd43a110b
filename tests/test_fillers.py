"""Fillers (include/caffe/filler.hpp): closed forms for deterministic ones, distribution checks for
random ones (seeded; tolerances are several standard errors wide)."""
import math

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from recaffe.netspec.net.fillers import fill, fan_in_out, bilinear_kernel


def fp(text=""):
    return text_format.Parse(text, caffe_pb2.FillerParameter())


def filled(shape, text, seed=0):
    torch.manual_seed(seed)
    return fill(torch.empty(shape), fp(text))


def test_default_is_constant_zero():
    t = fill(torch.ones(3, 4), None)
    assert torch.equal(t, torch.zeros(3, 4))
    assert torch.equal(fill(torch.ones(2), fp()), torch.zeros(2))


def test_constant_value():
    t = filled((2, 3, 4), 'type: "constant" value: 0.25')
    assert torch.equal(t, torch.full((2, 3, 4), 0.25))


def test_uniform_bounds_and_moments():
    t = filled((200, 500), 'type: "uniform" min: -2 max: 3')
    assert t.min() >= -2 and t.max() <= 3
    assert abs(t.mean().item() - 0.5) < 0.02
    assert abs(t.std().item() - 5 / math.sqrt(12)) < 0.02


def test_gaussian_moments():
    t = filled((100, 1000), 'type: "gaussian" mean: 1.5 std: 0.5')
    assert abs(t.mean().item() - 1.5) < 0.005
    assert abs(t.std().item() - 0.5) < 0.005


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    # shape[0] = 50 outputs, sparse 10 -> each element kept with probability 0.2
    t = filled((50, 4000), 'type: "gaussian" std: 1 sparse: 10')
    frac = (t != 0).float().mean().item()
    assert abs(frac - 0.2) < 0.005
    nz = t[t != 0]
    assert abs(nz.std().item() - 1.0) < 0.02


def test_positive_unitball_rows_sum_to_one():
    t = filled((7, 3, 2, 5), 'type: "positive_unitball"')
    assert t.min() >= 0
    np.testing.assert_allclose(t.view(7, -1).sum(1).numpy(), np.ones(7), rtol=1e-5)


@pytest.mark.parametrize("shape,fans", [((64, 3, 5, 5), (75, 1600)), ((10, 300), (300, 10)),
                                        ((20,), (1, 20)), ((8, 2, 3), (6, 24))])
def test_fan_computation_legacy_accessors(shape, fans):
    assert fan_in_out(fp(), shape) == fans


@pytest.mark.parametrize("norm,n", [("FAN_IN", 75), ("FAN_OUT", 1600), ("AVERAGE", (75 + 1600) / 2)])
def test_xavier_bound_and_std(norm, n):
    t = filled((64, 3, 5, 5), 'type: "xavier" variance_norm: %s' % norm)
    a = math.sqrt(3 / n)
    assert t.abs().max().item() <= a + 1e-7
    assert t.abs().max().item() > 0.99 * a
    assert abs(t.std().item() - a / math.sqrt(3)) < 0.03 * a


@pytest.mark.parametrize("norm,n", [("FAN_IN", 75), ("FAN_OUT", 1600), ("AVERAGE", (75 + 1600) / 2)])
def test_msra_std(norm, n):
    t = filled((64, 3, 5, 5), 'type: "msra" variance_norm: %s' % norm)
    s = math.sqrt(2 / n)
    assert abs(t.mean().item()) < 0.03 * s
    assert abs(t.std().item() - s) < 0.03 * s


def test_bilinear_exact_values():
    # K=4 (factor 2): f=2, c=0.75 -> 1-D weights 0.25 0.75 0.75 0.25
    k4 = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    np.testing.assert_array_equal(bilinear_kernel(4), np.outer(k4, k4))
    # K=3: f=2, c=(4-1-0)/4=0.75 -> 1-|x/2-0.75| = 0.25, 0.75, 0.75
    k3 = np.array([0.25, 0.75, 0.75], np.float32)
    np.testing.assert_array_equal(bilinear_kernel(3), np.outer(k3, k3))
    # K=5 (factor 3 from 2F - F%2 = 5): f=3, c=(6-1-1)/6=2/3 -> 1/3, 2/3, 1, 2/3, 1/3
    k5 = 1 - np.abs(np.arange(5) / 3 - 2 / 3)
    np.testing.assert_allclose(bilinear_kernel(5), np.outer(k5, k5), rtol=1e-6)
    t = filled((3, 2, 4, 4), 'type: "bilinear"')
    for o in range(3):
        for i in range(2):
            np.testing.assert_array_equal(t[o, i].numpy(), np.outer(k4, k4))


def test_bilinear_needs_square_4d():
    with pytest.raises(NetError, match="square"):
        filled((1, 1, 3, 4), 'type: "bilinear"')
    with pytest.raises(NetError, match="4-axis"):
        filled((4, 4), 'type: "bilinear"')


def test_unknown_filler_lists_valid():
    with pytest.raises(NetError, match="unknown filler type 'he'.*bilinear, constant, gaussian, msra"):
        filled((2, 2), 'type: "he"')


def test_bad_parameters():
    with pytest.raises(NetError, match="sparse"):
        filled((2, 2), 'type: "uniform" sparse: 1')
    with pytest.raises(NetError, match="min <= max"):
        filled((2, 2), 'type: "uniform" min: 1 max: 0')
    with pytest.raises(NetError, match="std > 0"):
        filled((2, 2), 'type: "gaussian" std: 0')
    with pytest.raises(NetError, match="at most 4 axes"):
        filled((2, 2, 2, 2, 2), 'type: "xavier"')


def test_parameter_filled_in_place():
    p = torch.nn.Parameter(torch.zeros(3))
    fill(p, fp('type: "constant" value: 2'))
    assert p.requires_grad and torch.equal(p.detach(), torch.full((3,), 2.0))
