"""Golden cases for the common layers (Concat, Slice, Eltwise, Flatten, Reshape, Tile, Reduction, ArgMax,
Softmax, BatchReindex, Filter, Split, Silence), computed by real Caffe.

Re-run from the repository root (idempotent; overwrites tests/golden/layers/common_*.npz):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_layers_common.py

Layers that abort when asked to back-propagate to some bottom (ArgMax, Threshold: never; Filter's
selector, BatchReindex's indices) cannot run under layer_oracle.case's force_backward; they go through
``partial_case`` below, which writes the same .npz format from a net without force_backward.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layer_oracle import case  # noqa: E402


def partial_case(case_id, layer_text, bottoms, grad_bottoms=(), phase="TEST", seed=0, force_backward=False):
    """layer_oracle.case without force_backward: bottoms in grad_bottoms come from a Parameter layer, the
    tops get loss_weight 1 in the net when some bottom needs a gradient. force_backward=True is case()
    itself (0-axis tops)."""
    return case(case_id, layer_text, bottoms, phase=phase, seed=seed, force_backward=force_backward,
                             grad_bottoms=grad_bottoms, loss_weight=bool(grad_bottoms))


def gauss(seed, shape):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def ints(seed, shape, hi=3):
    """Small integers: plenty of exact ties."""
    return np.random.RandomState(seed).randint(0, hi, size=shape).astype(np.float32)


def lay(name, type_, bottoms, tops, param=""):
    b = " ".join('bottom: "%s"' % x for x in bottoms)
    t = " ".join('top: "%s"' % x for x in tops)
    return 'name: "%s" type: "%s" %s %s %s' % (name, type_, b, t, param)


def concat_slice():
    a, b, c = gauss(1, (2, 2, 3, 2)), gauss(2, (2, 3, 3, 2)), gauss(3, (2, 1, 3, 2))
    case("common_concat", lay("cat", "Concat", "abc", ["y"]), [a, b, c])
    case("common_concat_neg_axis", lay("cat", "Concat", "ab", ["y"], "concat_param { axis: -1 }"),
         [gauss(4, (2, 3, 2)), gauss(5, (2, 3, 4))])
    case("common_concat_axis0", lay("cat", "Concat", "ab", ["y"], "concat_param { axis: 0 }"),
         [gauss(6, (1, 3, 2)), gauss(7, (3, 3, 2))])
    case("common_concat_dim", lay("cat", "Concat", "ab", ["y"], "concat_param { concat_dim: 2 }"),
         [gauss(8, (2, 2, 1, 2)), gauss(9, (2, 2, 3, 2))])
    case("common_concat_single", lay("cat", "Concat", "a", ["y"]), [a])
    x = gauss(10, (2, 6, 3, 2))
    case("common_slice_points", lay("sl", "Slice", "x", ["p", "q", "r"],
                                    "slice_param { slice_point: 1 slice_point: 4 }"), [x])
    case("common_slice_equal", lay("sl", "Slice", "x", ["p", "q", "r"]), [x])
    case("common_slice_axis", lay("sl", "Slice", "x", ["p", "q"], "slice_param { axis: -2 slice_point: 2 }"), [x])
    case("common_slice_dim", lay("sl", "Slice", "x", ["p", "q"], "slice_param { slice_dim: 0 }"), [x])
    case("common_slice_single", lay("sl", "Slice", "x", ["p"]), [x])


def eltwise():
    s = (2, 3, 4)
    a, b, c = gauss(11, s), gauss(12, s), gauss(13, s)
    a0 = a.copy()
    a0.reshape(-1)[[0, 5, 17]] = 0.0
    case("common_eltwise_sum", lay("el", "Eltwise", "ab", ["y"]), [a, b])
    case("common_eltwise_sum_coeff", lay("el", "Eltwise", "abc", ["y"],
                                         "eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }"), [a, b, c])
    case("common_eltwise_prod", lay("el", "Eltwise", "abc", ["y"], "eltwise_param { operation: PROD }"), [a0, b, c])
    case("common_eltwise_prod_unstable", lay("el", "Eltwise", "abc", ["y"],
                                             "eltwise_param { operation: PROD stable_prod_grad: false }"), [a0, b, c])
    t1, t2, t3 = ints(14, s), ints(15, s), ints(16, s)
    case("common_eltwise_max2_ties", lay("el", "Eltwise", "ab", ["y"], "eltwise_param { operation: MAX }"), [t1, t2])
    case("common_eltwise_max3_ties", lay("el", "Eltwise", "abc", ["y"], "eltwise_param { operation: MAX }"),
         [t1, t2, t3])
    case("common_eltwise_max3", lay("el", "Eltwise", "abc", ["y"], "eltwise_param { operation: MAX }"), [a, b, c])


def shapes():
    x = gauss(20, (2, 3, 4, 2))
    case("common_flatten", lay("fl", "Flatten", "x", ["y"]), [x])
    case("common_flatten_axes", lay("fl", "Flatten", "x", ["y"], "flatten_param { axis: 1 end_axis: 2 }"), [x])
    case("common_flatten_neg", lay("fl", "Flatten", "x", ["y"], "flatten_param { axis: -3 end_axis: -2 }"), [x])
    case("common_flatten_all", lay("fl", "Flatten", "x", ["y"], "flatten_param { axis: 0 }"), [x])
    case("common_reshape_copy_infer", lay("rs", "Reshape", "x", ["y"],
                                          "reshape_param { shape { dim: 0 dim: -1 dim: 2 } }"), [x])
    case("common_reshape_axis", lay("rs", "Reshape", "x", ["y"],
                                    "reshape_param { shape { dim: 2 dim: 2 } axis: 2 num_axes: 1 }"), [x])
    case("common_reshape_insert", lay("rs", "Reshape", "x", ["y"],
                                      "reshape_param { shape { dim: 1 } axis: 1 num_axes: 0 }"), [x])
    case("common_reshape_neg_axis", lay("rs", "Reshape", "x", ["y"],
                                        "reshape_param { shape { dim: -1 } axis: -3 }"), [x])
    case("common_reshape_zero_mid", lay("rs", "Reshape", "x", ["y"],
                                        "reshape_param { shape { dim: 0 dim: 0 dim: -1 } axis: 1 }"), [x])
    y = gauss(21, (2, 3, 2))
    case("common_tile", lay("tl", "Tile", "x", ["y"], "tile_param { tiles: 3 }"), [y])
    case("common_tile_last", lay("tl", "Tile", "x", ["y"], "tile_param { axis: -1 tiles: 2 }"), [y])
    case("common_tile_axis0", lay("tl", "Tile", "x", ["y"], "tile_param { axis: 0 tiles: 2 }"), [y])


def reductions():
    x = gauss(30, (2, 3, 4))
    x.reshape(-1)[[1, 7, 20]] = 0.0
    partial_case("common_reduction_sum", lay("rd", "Reduction", "x", ["y"]), [x], force_backward=True)
    case("common_reduction_asum", lay("rd", "Reduction", "x", ["y"],
                                      "reduction_param { operation: ASUM axis: 1 }"), [x])
    case("common_reduction_sumsq", lay("rd", "Reduction", "x", ["y"],
                                       "reduction_param { operation: SUMSQ axis: 2 coeff: 0.5 }"), [x])
    case("common_reduction_mean", lay("rd", "Reduction", "x", ["y"],
                                      "reduction_param { operation: MEAN axis: 1 coeff: 2 }"), [x])
    case("common_reduction_mean_neg", lay("rd", "Reduction", "x", ["y"],
                                          "reduction_param { operation: MEAN axis: -1 }"), [x])
    case("common_reduction_sum_coeff", lay("rd", "Reduction", "x", ["y"],
                                           "reduction_param { operation: SUM axis: 2 coeff: -3 }"), [x])
    z = gauss(31, (2, 3, 4, 2))
    case("common_softmax", lay("sm", "Softmax", "x", ["y"]), [z])
    case("common_softmax_axis2", lay("sm", "Softmax", "x", ["y"], "softmax_param { axis: 2 }"), [z * 3])
    case("common_softmax_neg", lay("sm", "Softmax", "x", ["y"], "softmax_param { axis: -1 }"), [gauss(32, (3, 5))])
    case("common_softmax_axis0", lay("sm", "Softmax", "x", ["y"], "softmax_param { axis: 0 }"), [z])


def selection():
    t = ints(40, (3, 2, 3, 2), hi=4)
    g = gauss(41, (3, 2, 3, 2))
    partial_case("common_argmax", lay("am", "ArgMax", "x", ["y"]), [t])
    partial_case("common_argmax_topk_val", lay("am", "ArgMax", "x", ["y"],
                                               "argmax_param { top_k: 3 out_max_val: true }"), [t])
    partial_case("common_argmax_val_gauss", lay("am", "ArgMax", "x", ["y"],
                                                "argmax_param { top_k: 2 out_max_val: true }"), [g])
    partial_case("common_argmax_axis", lay("am", "ArgMax", "x", ["y"], "argmax_param { axis: 2 top_k: 2 }"), [t])
    partial_case("common_argmax_axis_val", lay("am", "ArgMax", "x", ["y"],
                                               "argmax_param { axis: -1 top_k: 2 out_max_val: true }"), [t])
    partial_case("common_argmax_2d", lay("am", "ArgMax", "x", ["y"], "argmax_param { top_k: 2 }"),
                 [ints(42, (4, 5), hi=3)])
    data = gauss(43, (4, 3, 2))
    idx = np.array([2, 0, 2, 3, 1], np.float32)
    partial_case("common_batch_reindex", lay("br", "BatchReindex", ["d", "i"], ["y"]), [data, idx], grad_bottoms=(0,))
    d2 = gauss(44, (5, 4))
    d1 = gauss(45, (5, 2, 3))
    sel = np.array([1, 0, 0, 2.5, -1], np.float32).reshape(5, 1)
    partial_case("common_filter", lay("ft", "Filter", ["d", "e", "s"], ["y", "z"]), [d1, d2, sel],
                 grad_bottoms=(0, 1))
    partial_case("common_filter_1d_selector", lay("ft", "Filter", ["d", "s"], ["y"]),
                 [d1, np.array([0, 1, 1, 0, 0], np.float32)], grad_bottoms=(0,))
    case("common_split", lay("sp", "Split", "x", ["p", "q", "r"]), [g])
    case("common_silence", lay("si", "Silence", "xy", []), [g, d2])


def main():
    concat_slice()
    eltwise()
    shapes()
    reductions()
    selection()


if __name__ == "__main__":
    main()
