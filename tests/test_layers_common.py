"""Common layers against Caffe goldens (tests/oracle/make_layers_common.py), plus bad-input errors."""
import numpy as np
import pytest
import torch
from google.protobuf import text_format

from layer_harness import build_layer, check_case, load_case
from recaffe.netspec.net.layers import layer_class
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

PARITY = [
    "common_concat", "common_concat_neg_axis", "common_concat_axis0", "common_concat_dim", "common_concat_single",
    "common_slice_points", "common_slice_equal", "common_slice_axis", "common_slice_dim", "common_slice_single",
    "common_eltwise_sum", "common_eltwise_sum_coeff", "common_eltwise_prod", "common_eltwise_prod_unstable",
    "common_eltwise_max2_ties", "common_eltwise_max3_ties", "common_eltwise_max3",
    "common_flatten", "common_flatten_axes", "common_flatten_neg", "common_flatten_all",
    "common_reshape_copy_infer", "common_reshape_axis", "common_reshape_insert", "common_reshape_neg_axis",
    "common_reshape_zero_mid",
    "common_tile", "common_tile_last", "common_tile_axis0",
    "common_reduction_sum", "common_reduction_asum", "common_reduction_sumsq", "common_reduction_mean",
    "common_reduction_mean_neg", "common_reduction_sum_coeff",
    "common_softmax", "common_softmax_axis2", "common_softmax_neg", "common_softmax_axis0",
    "common_split", "common_silence",
]
ARGMAX = ["common_argmax", "common_argmax_topk_val", "common_argmax_val_gauss", "common_argmax_axis",
          "common_argmax_axis_val", "common_argmax_2d"]


@pytest.mark.parametrize("case_id", PARITY)
def test_parity(case_id):
    check_case(case_id)


@pytest.mark.parametrize("case_id", ARGMAX)
def test_argmax(case_id):
    layer, tops = check_case(case_id, backward=False)
    assert not tops[0].requires_grad
    assert tuple(layer.top_shapes[0]) == load_case(case_id)["top_0"].shape


def test_argmax_goldens_hold_ties():
    x = load_case("common_argmax_axis")["bottom_0"]
    s = np.sort(x, axis=2)
    assert (s[:, :, -1] == s[:, :, -2]).any()  # top-2 ties along the axis exist


def test_eltwise_prod_unstable_zero_is_nan_like_caffe():
    case = load_case("common_eltwise_prod_unstable")
    assert np.isnan(case["bottom_diff_0"]).any()  # Caffe divides 0 by 0 there; check_case matches NaNs


def test_eltwise_max_ties_go_to_bottom1():
    """Caffe's MAX: bottom 0 beats bottom 1 only when strictly greater."""
    case = load_case("common_eltwise_max2_ties")
    ties = case["bottom_0"] == case["bottom_1"]
    assert ties.sum() > 0
    assert (case["bottom_diff_0"][ties] == 0).all() and (case["bottom_diff_1"][ties] != 0).all()


@pytest.mark.parametrize("case_id,data", [("common_batch_reindex", (0,)), ("common_filter", (0, 1)),
                                          ("common_filter_1d_selector", (0,))])
def test_indexing_layers(case_id, data):
    """Gradients to the data bottoms (zero for filtered-out items, summed for repeated indices);
    none to the selector / indices."""
    case = load_case(case_id)
    n = len(str(case["bottom_names"]).split())
    layer, tops = check_case(case_id, no_grad_bottoms=tuple(i for i in range(n) if i not in data))
    for i in range(n):
        if i not in data:
            assert not case["bottom_diff_%d" % i].any()


def test_filter_declares_caffe_setup_shape():
    case = load_case("common_filter")
    _, layer, _ = build_layer(case)
    assert layer.top_shapes == [case["bottom_0"].shape, case["bottom_1"].shape]  # N items at setup
    assert case["top_0"].shape[0] == 3  # forward keeps the non-zero selector items only


def test_split_gradients_add_up():
    case = load_case("common_split")
    total = sum(case["top_diff_%d" % i] for i in range(3))
    np.testing.assert_allclose(case["bottom_diff_0"], total, rtol=1e-6)


def test_reshape_view_and_runtime_batch():
    layer = layer_from('name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: 0 dim: -1 } }',
                       [(2, 3, 4)])
    assert layer.top_shapes == [(2, 12)]
    x = torch.randn(5, 3, 4)  # a different batch at run time
    y = layer(x)[0]
    assert y.shape == (5, 12) and y.data_ptr() == x.data_ptr()


def test_slice_follows_runtime_shape():
    layer = layer_from('name: "s" type: "Slice" bottom: "x" top: "p" top: "q" slice_param { axis: 0 }', [(4, 3)])
    assert layer.top_shapes == [(2, 3), (2, 3)]
    p, q = layer(torch.arange(18.0).reshape(6, 3))
    assert p.shape == q.shape == (3, 3) and q[0, 0] == 9


def test_flatten_inserts_axis_when_end_precedes_axis():
    """Caffe's Blob::count(axis, end_axis + 1) is 1 when end_axis = axis - 1: a unit axis appears."""
    layer = layer_from('name: "f" type: "Flatten" bottom: "x" top: "y" flatten_param { axis: 1 end_axis: 0 }',
                       [(2, 3, 4)])
    assert layer.top_shapes == [(2, 1, 3, 4)]
    assert layer(torch.zeros(2, 3, 4))[0].shape == (2, 1, 3, 4)


def layer_from(text, shapes, phase="TEST"):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return layer_class(lp.type, lp.name)(lp, shapes, phase).apply_fillers()


BAD = [
    ('name: "cat1" type: "Concat" bottom: "a" bottom: "b" top: "y"', [(2, 3, 4), (2, 3, 5)], "must match"),
    ('name: "cat2" type: "Concat" bottom: "a" bottom: "b" top: "y"', [(2, 3), (2, 3, 1)], "must match"),
    ('name: "cat3" type: "Concat" bottom: "a" top: "y" concat_param { axis: 1 concat_dim: 1 }', [(2, 3)], "not both"),
    ('name: "cat4" type: "Concat" bottom: "a" top: "y" concat_param { axis: -4 }', [(2, 3, 4)], "out of range"),
    ('name: "cat5" type: "Concat" bottom: "a" top: "y" concat_param { concat_dim: 3 }', [(2, 3, 4)], "out of range"),
    ('name: "sl1" type: "Slice" bottom: "a" top: "p" top: "q" slice_param { slice_point: 1 slice_point: 2 }',
     [(2, 4)], "slice_point"),
    ('name: "sl2" type: "Slice" bottom: "a" top: "p" top: "q" slice_param { slice_point: 4 }', [(2, 4)], "strictly"),
    ('name: "sl3" type: "Slice" bottom: "a" top: "p" top: "q" top: "r"', [(2, 4)], "evenly"),
    ('name: "el1" type: "Eltwise" bottom: "a" bottom: "b" top: "y"', [(2, 3), (3, 2)], "shapes must match"),
    ('name: "el2" type: "Eltwise" bottom: "a" bottom: "b" top: "y" eltwise_param { operation: PROD coeff: 1 coeff: 2 }',
     [(2, 3), (2, 3)], "coeff only for SUM"),
    ('name: "el3" type: "Eltwise" bottom: "a" bottom: "b" top: "y" eltwise_param { coeff: 1 }',
     [(2, 3), (2, 3)], "one coeff per bottom"),
    ('name: "el4" type: "Eltwise" bottom: "a" top: "y"', [(2, 3)], "at least 2 bottom"),
    ('name: "rs1" type: "Reshape" bottom: "a" top: "y" reshape_param { shape { dim: -1 dim: -1 } }', [(2, 3)],
     "more than one -1"),
    ('name: "rs2" type: "Reshape" bottom: "a" top: "y" reshape_param { shape { dim: 4 dim: -1 } }', [(2, 3)],
     "divisible"),
    ('name: "rs3" type: "Reshape" bottom: "a" top: "y" reshape_param { shape { dim: 5 } }', [(2, 3)], "elements"),
    ('name: "rs4" type: "Reshape" bottom: "a" top: "y" reshape_param { shape { dim: 0 dim: 0 dim: 0 } }', [(2, 3)],
     "no axis 2"),
    ('name: "rs5" type: "Reshape" bottom: "a" top: "y" reshape_param { shape { dim: 6 } axis: 3 }', [(2, 3)],
     "out of range"),
    ('name: "rs6" type: "Reshape" bottom: "a" top: "a" reshape_param { shape { dim: 6 } }', [(2, 3)], "in-place"),
    ('name: "fl1" type: "Flatten" bottom: "a" top: "y" flatten_param { axis: 2 end_axis: 0 }', [(2, 3, 4)],
     "comes before"),
    ('name: "tl1" type: "Tile" bottom: "a" top: "y"', [(2, 3)], "tiles"),
    ('name: "rd1" type: "Reduction" bottom: "a" top: "y" reduction_param { axis: 2 }', [(2, 3)], "out of range"),
    ('name: "am1" type: "ArgMax" bottom: "a" top: "y" argmax_param { top_k: 7 }', [(2, 3)], "top_k"),
    ('name: "am2" type: "ArgMax" bottom: "a" top: "y" argmax_param { axis: 0 top_k: 3 }', [(2, 3)], "top_k"),
    ('name: "br1" type: "BatchReindex" bottom: "a" bottom: "i" top: "y"', [(4, 3), (2, 1)], "1-D"),
    ('name: "ft1" type: "Filter" bottom: "a" bottom: "s" top: "y"', [(4, 3), (4, 2)], "selector"),
    ('name: "ft2" type: "Filter" bottom: "a" bottom: "s" top: "y"', [(4, 3), (5, 1)], "first axis"),
    ('name: "ft3" type: "Filter" bottom: "a" bottom: "s" top: "y" top: "z"', [(4, 3), (4, 1)], "one top per"),
    ('name: "sp1" type: "Split" bottom: "a" top: "a" top: "b"', [(4, 3)], "in-place"),
    ('name: "sm1" type: "Softmax" bottom: "a" top: "y" softmax_param { axis: 2 }', [(4, 3)], "out of range"),
]


@pytest.mark.parametrize("text,shapes,what", BAD)
def test_bad_input(text, shapes, what):
    with pytest.raises(NetError) as e:
        layer_from(text, shapes)
    msg = str(e.value)
    assert f"'{text.split(chr(34))[1]}'" in msg and what in msg and "\n" not in msg, msg


def test_batch_reindex_bad_index():
    layer = layer_from('name: "br2" type: "BatchReindex" bottom: "a" bottom: "i" top: "y"', [(4, 3), (2,)])
    with pytest.raises(NetError, match="br2.*0, 4"):
        layer(torch.zeros(4, 3), torch.tensor([1.0, 4.0]))
