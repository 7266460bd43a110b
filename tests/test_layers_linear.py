"""Linear layers (InnerProduct, Embed, Scale, Bias, Parameter) against Caffe goldens
(tests/oracle/make_layers_linear.py), plus bad-input errors."""
import glob
import os

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from layer_harness import GOLDEN, assert_build_error, check_case, load_case
from recaffe.netspec.net.layers import layer_class
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(GOLDEN, "linear_*.npz")))


def test_golden_set_is_complete():
    assert len(CASES) >= 25
    for prefix in ("ip", "embed", "scale", "scale_2bottoms", "bias", "bias_2bottoms", "parameter"):
        assert any(c.startswith("linear_" + prefix) for c in CASES), prefix


@pytest.mark.parametrize("case_id", CASES)
def test_parity(case_id):
    check_case(case_id)


def test_embed_accumulates_repeated_rows():
    """Row 5 is used several times in the golden: its gradient is the sum (checked by parity too)."""
    c = load_case("linear_embed")
    idx = c["bottom_0"].astype(int)
    assert (idx == 5).sum() >= 2
    expect = c["top_diff_0"][idx == 5].sum(0)
    np.testing.assert_allclose(c["param_diff_0"][5], expect, rtol=1e-5)
    assert not c["bottom_diff_0"].any()   # Caffe never back-propagates to the indices


def build(text, shapes, phase="TEST"):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return layer_class(lp.type, lp.name)(lp, shapes, phase).apply_fillers()


def test_default_fillers_follow_caffe():
    """Scale's default filler is constant 1, its bias and Bias's constant 0; Parameter is zero."""
    s = build('name: "s" type: "Scale" bottom: "x" top: "y" scale_param { bias_term: true }', [(2, 3, 4)])
    assert torch.equal(s.blobs[0].data, torch.ones(3)) and torch.equal(s.blobs[1].data, torch.zeros(3))
    b = build('name: "b" type: "Bias" bottom: "x" top: "y" bias_param { num_axes: 2 }', [(2, 3, 4)])
    assert tuple(b.blobs[0].shape) == (3, 4) and not b.blobs[0].data.any()
    p = build('name: "p" type: "Parameter" top: "y" parameter_param { shape { dim: 4 } }', [])
    assert p.top_shapes == [(4,)] and not p.blobs[0].data.any()


def test_inner_product_shapes():
    ip = build('name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 7 '
               'transpose: true axis: 2 }', [(2, 3, 4, 5)])
    assert [tuple(b.shape) for b in ip.blobs] == [(20, 7), (7,)] and ip.top_shapes == [(2, 3, 7)]


def test_embed_rejects_out_of_range_index():
    e = build('name: "emb" type: "Embed" bottom: "x" top: "y" embed_param { num_output: 2 input_dim: 3 }', [(4,)])
    with pytest.raises(NetError, match="layer 'emb'.*out of range"):
        e(torch.tensor([0.0, 1.0, 3.0, 2.0]))


BAD = [
    ('name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 3 axis: 4 }',
     [(2, 3, 4)], "out of range"),
    ('name: "ip" type: "InnerProduct" bottom: "x" top: "y"', [(2, 3)], "num_output"),
    ('name: "emb" type: "Embed" bottom: "x" top: "y" embed_param { num_output: 3 }', [(2, 3)], "input_dim"),
    ('name: "sc" type: "Scale" bottom: "x" bottom: "s" top: "y"', [(2, 3, 4), (4,)], "does not match"),
    ('name: "sc" type: "Scale" bottom: "x" top: "y" scale_param { num_axes: -2 }', [(2, 3, 4)], "num_axes"),
    ('name: "sc" type: "Scale" bottom: "x" top: "y" scale_param { axis: 2 num_axes: 2 }', [(2, 3, 4)],
     "extends past"),
    ('name: "bi" type: "Bias" bottom: "x" bottom: "b" top: "y" bias_param { axis: 0 }', [(2, 3, 4), (3,)],
     "does not match"),
    ('name: "bi" type: "Bias" bottom: "x" bottom: "b" bottom: "c" top: "y"', [(2, 3), (3,), (3,)], "at most 2"),
]


@pytest.mark.parametrize("text,shapes,what", BAD)
def test_bad_input_names_the_layer(text, shapes, what):
    assert_build_error(build, text, shapes, what)
