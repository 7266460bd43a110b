"""Golden cases for the linear layers (InnerProduct, Embed, Scale, Bias, Parameter), computed by real
Caffe.

Re-run from the repository root (idempotent; overwrites tests/golden/layers/linear_*.npz):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_layers_linear.py

Embed aborts when asked to back-propagate to its index bottom, so its cases come from ``no_force_case``
(no force_backward; the top gets loss_weight 1 in the net only, so Caffe computes the parameter
gradients from the seeded top diff). Scalar (0-axis) blobs are given explicitly (layer_oracle's random
params need >= 1 axis).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layer_oracle import case  # noqa: E402


def gauss(seed, shape):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def lay(name, type_, param, bottoms=("x",), tops=("y",)):
    b = " ".join('bottom: "%s"' % x for x in bottoms)
    t = " ".join('top: "%s"' % x for x in tops)
    return 'name: "%s" type: "%s" %s %s %s' % (name, type_, b, t, param)


def no_force_case(case_id, layer_text, x, seed=0):
    """One bottom from Input (no gradient), random params, the layer's top with loss_weight 1."""
    return case(case_id, layer_text, [x], seed=seed, force_backward=False, loss_weight=True)


def inner_product():
    x = gauss(1, (2, 3, 2, 2))
    ip = lambda p: lay("ip", "InnerProduct", "inner_product_param { %s }" % p)  # noqa: E731
    case("linear_ip", ip("num_output: 5"), [x])
    case("linear_ip_axis2", ip("num_output: 4 axis: 2"), [gauss(2, (2, 3, 4, 2))])
    case("linear_ip_axis_neg", ip("num_output: 3 axis: -1"), [gauss(3, (2, 3, 4))])
    case("linear_ip_transpose", ip("num_output: 5 transpose: true"), [x])
    case("linear_ip_nobias", ip("num_output: 2 bias_term: false"), [x])
    case("linear_ip_2d", ip("num_output: 4"), [gauss(4, (3, 6))])


def embed():
    idx = np.random.RandomState(5).randint(0, 6, size=(3, 4)).astype(np.float32)
    idx[0, :2] = 5.0    # repeated rows accumulate their gradients
    emb = lambda p: lay("emb", "Embed", "embed_param { %s }" % p)  # noqa: E731
    no_force_case("linear_embed", emb("num_output: 3 input_dim: 6"), idx)
    no_force_case("linear_embed_nobias", emb("num_output: 2 input_dim: 6 bias_term: false"), idx[:2])
    no_force_case("linear_embed_1d", emb("num_output: 4 input_dim: 3"), np.array([2, 0, 2, 1], np.float32))


def scale_bias():
    x = gauss(10, (2, 3, 4, 2))
    sc = lambda p, b=("x",): lay("sc", "Scale", "scale_param { %s }" % p, bottoms=b)  # noqa: E731
    case("linear_scale", sc(""), [x])
    case("linear_scale_bias", sc("bias_term: true"), [x])
    case("linear_scale_axis_numaxes", sc("axis: 1 num_axes: 2 bias_term: true"), [x])
    case("linear_scale_numaxes_all", sc("axis: 2 num_axes: -1"), [x])
    case("linear_scale_neg_axis", sc("axis: -2"), [x])
    case("linear_scale_scalar", sc("num_axes: 0 bias_term: true"), [x], params="given",
         param_values=[np.float32(-1.5), np.float32(0.25)])
    case("linear_scale_2bottoms", sc("", ("x", "s")), [x, gauss(11, (3, 4))])
    case("linear_scale_2bottoms_bias", sc("bias_term: true", ("x", "s")), [x, gauss(12, (3,))])
    case("linear_scale_2bottoms_axis0", sc("axis: 0", ("x", "s")), [x, gauss(13, (2, 3))])
    case("linear_scale_2bottoms_scalar", sc("", ("x", "s")), [x, np.array(1.75, np.float32)])
    bi = lambda p, b=("x",): lay("bi", "Bias", "bias_param { %s }" % p, bottoms=b)  # noqa: E731
    case("linear_bias", bi(""), [x])
    case("linear_bias_axis2", bi("axis: 2 num_axes: -1"), [x])
    case("linear_bias_scalar", bi("num_axes: 0"), [x], params="given", param_values=[np.float32(0.5)])
    case("linear_bias_2bottoms", bi("", ("x", "b")), [x, gauss(14, (3, 4))])
    case("linear_bias_2bottoms_axis0", bi("axis: 0", ("x", "b")), [x, gauss(15, (2,))])


def parameter():
    case("linear_parameter", 'name: "par" type: "Parameter" top: "y" parameter_param { shape { dim: 2 dim: 3 } }',
         [])


def main():
    inner_product()
    embed()
    scale_bias()
    parameter()


if __name__ == "__main__":
    main()
