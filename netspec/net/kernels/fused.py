"""The oneDNN calls behind the fused inference chains (the chains themselves are planned in
netspec/net/fuse.py): Convolution [+ BatchNorm + Scale] [+ ReLU] as one ``_convolution_pointwise``
on weights with the BatchNorm/Scale affine folded in and reordered once into oneDNN's blocked
layout; InnerProduct [+ ReLU] as one ``_linear_pointwise`` on the plain weight (linear.py).

Channels-last throughout (the fused call's layout): oneDNN's blocked NCHW kernels are 10-25% faster
for single 5x5+ convolutions, but the layout copies around them cost more (whole nets: GoogLeNet
~20%, CaffeNet ~7% faster all channels-last).
"""
import torch

from ..layers import caffe_math as cm
from .linear import onednn_linear, onednn_linear_ok
from .switch import enabled

ONEDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def conv_chain_plan(x):
    """The selector for a fused convolution chain on bottom x: a function
    ``f(x, packed_w, b, pad, stride, dilation, groups, attr)`` (weights from pack_conv), or None."""
    return conv_pointwise if ONEDNN_CONV and enabled(x) else None


def linear_chain_plan(x2, w):
    """The selector for a fused inner product chain on the flattened bottom x2: a function
    ``f(x2, w, b, attr)``, or None."""
    return onednn_linear if onednn_linear_ok(x2, w) else None


def conv_pointwise(x, packed_w, b, pad, stride, dilation, groups, attr):
    """conv(x, W) + b, then ``attr`` ("none" or "relu"), by oneDNN on weights from pack_conv; no autograd."""
    return torch.ops.mkldnn._convolution_pointwise(x, packed_w, b, pad, stride, dilation, groups, attr, [], "")


def pack_conv(w, b, pad, stride, dilation, groups, x_shape, bn=None, eps=0.0, scale=None):
    """(reordered weight, bias) for conv_pointwise: with ``bn`` = BatchNorm blobs (mean, var, factor) and
    ``scale`` = Scale blobs (gamma, beta), y = gamma (conv(x, W) + b - mean f) / sqrt(var f + eps) + beta
    is folded into W and b in float64 and rounded once (f = batchnorm_scale_factor(factor),
    batch_norm_layer.cpp / scale_layer.cpp)."""
    w = w.detach()
    b = b.detach() if b is not None else None
    if bn is not None:
        mean, var, factor = (t.detach().double() for t in bn)
        f = cm.batchnorm_scale_factor(factor)
        inv = (var * f + eps).rsqrt() * scale[0].detach().double()
        w = (w.double() * inv.view(-1, *([1] * (w.dim() - 1)))).float()
        b0 = b.double() if b is not None else 0.0
        b = ((b0 - mean * f) * inv + scale[1].detach().double()).float()
    wp = torch.ops.mkldnn._reorder_convolution_weight(w.contiguous(), pad, stride, dilation, groups, list(x_shape))
    return wp, (b.contiguous() if b is not None else None)
