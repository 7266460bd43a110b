"""Neuron layers against Caffe goldens (tests/oracle/make_layers_neuron.py), plus Dropout by
distribution and bad-input errors."""
import math

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from layer_harness import build_layer, check_case, load_case
from recaffe.netspec.net.layers import layer_class
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

PARITY = [
    "neuron_relu", "neuron_relu_slope", "neuron_relu_negslope",
    "neuron_prelu", "neuron_prelu_shared", "neuron_prelu_2d", "neuron_prelu_filler", "neuron_prelu_given_filler",
    "neuron_elu", "neuron_elu_alpha", "neuron_sigmoid", "neuron_tanh", "neuron_bnll", "neuron_absval",
    "neuron_swish", "neuron_swish_beta", "neuron_clip", "neuron_clip_pos", "neuron_clip_inverted",
    "neuron_power_default", "neuron_power_affine", "neuron_power_sq", "neuron_power_sq_affine",
    "neuron_power_sqrt", "neuron_power_sqrt_affine", "neuron_power_cube", "neuron_power_inv_scaled",
    "neuron_power_zero", "neuron_power_scale0",
    "neuron_exp", "neuron_exp_e_affine", "neuron_exp_base2", "neuron_exp_base10",
    "neuron_log", "neuron_log_e_affine", "neuron_log_base2", "neuron_log_base10",
    "neuron_dropout_test", "neuron_dropout_layer_phase", "neuron_dropout_train_ratio0",
]
IN_PLACE = ["neuron_inplace_relu_negslope", "neuron_inplace_relu", "neuron_inplace_elu_negalpha",
            "neuron_inplace_clip", "neuron_inplace_bnll", "neuron_inplace_log", "neuron_inplace_power",
            "neuron_inplace_power_noshift", "neuron_inplace_power_sq", "neuron_inplace_power_affine",
            "neuron_inplace_power_default", "neuron_inplace_sigmoid",
            "neuron_inplace_exp", "neuron_inplace_prelu"]


@pytest.mark.parametrize("case_id", PARITY)
def test_parity(case_id):
    check_case(case_id)


@pytest.mark.parametrize("case_id", IN_PLACE)
def test_in_place_parity(case_id):
    """top == bottom: Caffe's backward reads the overwritten bottom; we reproduce its gradient."""
    check_case(case_id)


def test_in_place_changes_caffe_gradient():
    """The in-place goldens differ from the out-of-place ones on the same input (so they test something)."""
    a, b = load_case("neuron_inplace_clip"), load_case("neuron_clip")
    np.testing.assert_array_equal(a["bottom_0"], b["bottom_0"])
    assert not np.allclose(a["bottom_diff_0"], b["bottom_diff_0"])
    np.testing.assert_array_equal(a["bottom_diff_0"], a["top_diff_0"])  # in-place Clip passes everything
    # in-place Log (base 2, scale 3, shift 0.5): Caffe squares its derivative, ignoring the top diff
    c = load_case("neuron_inplace_log")
    d = 3 / np.log(2) / (3 * c["top_0"].astype(np.float64) + 0.5)
    np.testing.assert_allclose(c["bottom_diff_0"], d * d, rtol=1e-5)


@pytest.mark.parametrize("case_id", ["neuron_threshold", "neuron_threshold_03"])
def test_threshold_forward_and_no_gradient(case_id):
    layer, tops = check_case(case_id, backward=False)
    case = load_case(case_id)
    assert 0 < case["top_0"].sum() < case["top_0"].size  # both outcomes occur, at the threshold too
    x = torch.from_numpy(case["bottom_0"]).requires_grad_(True)
    assert not layer(x)[0].requires_grad  # Caffe has no backward for Threshold


def test_kinks_are_in_the_goldens():
    """The goldens really hold inputs on the kinks (else the parity cases would prove little)."""
    assert (load_case("neuron_relu")["bottom_0"] == 0).sum() >= 3
    assert (load_case("neuron_absval")["bottom_0"] == 0).sum() >= 3
    clip = load_case("neuron_clip")["bottom_0"]
    assert (clip == np.float32(-0.5)).sum() >= 3 and (clip == np.float32(0.75)).sum() >= 3
    # Caffe: gradient passes at the clip bounds, ReLU at 0 takes the negative slope
    c = load_case("neuron_clip")
    at = (clip == np.float32(-0.5)) | (clip == np.float32(0.75))
    np.testing.assert_array_equal(c["bottom_diff_0"][at], c["top_diff_0"][at])
    r = load_case("neuron_relu_slope")
    z = r["bottom_0"] == 0
    np.testing.assert_allclose(r["bottom_diff_0"][z], np.float32(0.1) * r["top_diff_0"][z], rtol=1e-6)


@pytest.mark.parametrize("case_id", ["neuron_prelu_filler", "neuron_prelu_given_filler"])
def test_prelu_filler_matches_caffe(case_id):
    case = load_case(case_id)
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(str(case["layer"]), lp)
    layer = layer_class(lp.type)(lp, [case["bottom_0"].shape]).apply_fillers()
    np.testing.assert_array_equal(layer.blobs[0].detach().numpy(), case["param_0"])


def test_prelu_shared_blob_is_scalar():
    _, layer, _ = build_layer(load_case("neuron_prelu_shared"))
    assert tuple(layer.blobs[0].shape) == ()


def test_dropout_train_distribution():
    """TRAIN masks are random: compare with Caffe by distribution (values kept scaled by 1/(1-p),
    kept fraction ~ 1-p, gradient through the same mask)."""
    case = load_case("neuron_dropout_train_dist")
    p, n = 0.3, case["bottom_0"].size
    scale = np.float32(1.0 / (1.0 - float(np.float32(p))))
    caffe_top = case["top_0"]
    assert set(np.unique(caffe_top).tolist()) == {0.0, float(scale)}
    np.testing.assert_allclose(case["bottom_diff_0"], case["top_diff_0"] * caffe_top, rtol=1e-6)
    torch.manual_seed(0)
    _, layer, _ = build_layer(case)
    x = torch.ones(n, requires_grad=True)
    y = layer(x)[0]
    vals = set(np.unique(y.detach().numpy()).tolist())
    assert vals == {0.0, float(scale)}
    sigma = math.sqrt(n * p * (1 - p))
    for top in (caffe_top, y.detach().numpy()):
        kept = (top != 0).sum()
        assert abs(kept - n * (1 - p)) < 4 * sigma
    dy = torch.from_numpy(case["top_diff_0"])
    (y * dy).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (dy * y).detach().numpy(), rtol=1e-6)
    # a fresh forward draws a fresh mask
    assert not torch.equal(layer(x)[0], y)


def test_dropout_test_phase_is_identity_object():
    _, layer, _ = build_layer(load_case("neuron_dropout_test"))
    x = torch.randn(3, 4)
    assert layer(x)[0] is x


def layer_from(text, shapes, phase="TEST"):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return layer_class(lp.type, lp.name)(lp, shapes, phase).apply_fillers()


def test_forward_leaves_bottom_untouched():
    """In-place prototxt (top == bottom) is safe: no layer writes into its bottom."""
    for t in ["ReLU", "ELU", "Sigmoid", "TanH", "BNLL", "Swish", "Power", "Exp", "PReLU"]:
        layer = layer_from(f'name: "n" type: "{t}" bottom: "x" top: "x"', [(2, 3, 4)])
        x = torch.randn(2, 3, 4)
        keep = x.clone()
        layer(x)
        assert torch.equal(x, keep), t


def test_power_zero_base_gives_nan_gradient_like_caffe():
    """Caffe's generic Power gradient is power*scale*y/base: 0/0 = NaN where the base is 0."""
    layer = layer_from('name: "p" type: "Power" bottom: "x" top: "y" power_param { power: 0.5 }', [(3,)])
    x = torch.tensor([0.0, 1.0, 4.0], requires_grad=True)
    layer(x)[0].sum().backward()
    assert math.isnan(x.grad[0].item())
    np.testing.assert_allclose(x.grad[1:].numpy(), [0.5, 0.25], rtol=1e-6)


BAD = [
    ('name: "abs1" type: "AbsVal" bottom: "x" top: "x"', [(2, 3)], "in-place"),
    ('name: "pr1" type: "PReLU" bottom: "x" top: "y"', [(5,)], "at least 2 axes"),
    ('name: "pr2" type: "PReLU" bottom: "x" top: "y"', [(1, 2, 3, 4, 5)], "at most 4 axes"),
    ('name: "ex1" type: "Exp" bottom: "x" top: "y" exp_param { base: -2 }', [(2, 3)], "strictly positive"),
    ('name: "lg1" type: "Log" bottom: "x" top: "y" log_param { base: 1 }', [(2, 3)], "other than 1"),
    ('name: "lg2" type: "Log" bottom: "x" top: "y" log_param { base: 0 }', [(2, 3)], "strictly positive"),
    ('name: "dr1" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 1 }', [(2, 3)], "[0, 1)"),
    ('name: "re1" type: "ReLU" bottom: "x" bottom: "z" top: "y"', [(2, 3), (2, 3)], "exactly 1 bottom"),
    ('name: "sg1" type: "Sigmoid" bottom: "x" top: "y" top: "z"', [(2, 3)], "exactly 1 top"),
]


@pytest.mark.parametrize("text,shapes,what", BAD)
def test_bad_input(text, shapes, what):
    with pytest.raises(NetError) as e:
        layer_from(text, shapes)
    msg = str(e.value)
    name = text.split('"')[1]
    assert f"'{name}'" in msg and what in msg and "\n" not in msg
