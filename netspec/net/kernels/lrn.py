"""LRN passes laid out for the CPU's caches (src/caffe/layers/lrn_layer.cpp: CrossChannelForward_cpu,
CrossChannelBackward_cpu; WITHIN_CHANNEL through AVE pooling).

ACROSS_CHANNELS runs one sample at a time, so every pass stays in cache, in the bottom's memory order
(channels-last data as its N, H, W, C view), as n shifted adds over the channel axis instead of a
pooling over a reshaped tensor; its backward is Caffe's formula, not autograd's graph of the plain
ops. WITHIN_CHANNEL pools the squares channels-last (torch's NCHW CPU pooling is not vectorised).
The layer (layers/vision.py LRN) holds the plain torch version of the same arithmetic.
"""
import functools

import torch
import torch.nn.functional as F

from ..layers import caffe_math as cm
from .switch import enabled


def lrn_plan(x, n, alpha, beta, k, within):
    """The selector for LRN on the 4-D bottom x: a function ``f(x)`` giving the top, or None for the
    layer's plain torch ops."""
    if x.dim() != 4 or not enabled(x):
        return None
    if within:
        return functools.partial(lrn_within, n=n, alpha=alpha, beta=beta)
    if x.requires_grad and torch.is_grad_enabled():
        return functools.partial(lrn_across_autograd, n=n, alpha=alpha, beta=beta, k=k)
    return functools.partial(lrn_across, n=n, alpha=alpha, beta=beta, k=k)


def lrn_within(x, n, alpha, beta):
    """WITHIN_CHANNEL with the squares pooled channels-last."""
    sq = (x * x).contiguous(memory_format=torch.channels_last)
    sq_mean = F.avg_pool2d(sq, n, 1, (n - 1) // 2, count_include_pad=True).contiguous()
    return x * cm.lrn_within_scale(sq_mean, alpha).pow(-beta)


def lrn_across_autograd(x, n, alpha, beta, k):
    """ACROSS_CHANNELS recorded for autograd with Caffe's backward."""
    return _CrossChannelLRN.apply(x, n, alpha, beta, k)


def _window_sum(v, n, dim, out=None):
    """Sum over the n entries centred on each entry along axis ``dim`` (zeros outside): n shifted adds
    (into ``out`` if given)."""
    half, C = (n - 1) // 2, v.shape[dim]
    p = F.pad(v, [0, 0] * (v.dim() - 1 - dim % v.dim()) + [half, half])
    out = p.narrow(dim, 0, C).clone() if out is None else out.copy_(p.narrow(dim, 0, C))
    for i in range(1, n):
        out += p.narrow(dim, i, C)
    return out


def _lrn_layout(x):
    """(view, channel axis of the view) for the LRN passes over x (N, C, H, W): channels-last data
    as its (N, H, W, C) view, so every pass runs over memory in order; NCHW data as it is (the
    channel window then shifts whole H x W planes)."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return (lambda t: t.permute(0, 2, 3, 1)), -1
    return (lambda t: t), 1


def _neg_pow(s, beta, out=None):
    """s ** -beta, into ``out`` (s itself when None); beta = 0.75 (every zoo net) as
    rsqrt(s) * rsqrt(sqrt(s)), 3x faster than pow here and within 2 float32 ulps of it."""
    if beta == 0.75:
        r = torch.sqrt(s).rsqrt_()
        return (s.rsqrt_() if out is None else torch.rsqrt(s, out=out)).mul_(r)
    return s.pow_(-beta) if out is None else torch.pow(s, -beta, out=out)


def lrn_across(x, n, alpha, beta, k, keep=False):
    """LRN ACROSS_CHANNELS forward, one sample at a time (each pass stays in cache) in x's memory
    order (lrn_layer.cpp CrossChannelForward_cpu: squares scaled by alpha/n, summed over the window,
    plus k; y = x * scale^-beta). keep: also return scale and scale^-beta."""
    view, dim = _lrn_layout(x)
    y = torch.empty_like(x)
    scale = torch.empty_like(x) if keep else None
    power = torch.empty_like(x) if keep else None
    v, yv, sv, pv = (view(t) if t is not None else None for t in (x, y, scale, power))
    for i in range(x.shape[0]):
        k1 = slice(i, i + 1)
        vi = v[k1]
        s = _window_sum((vi * vi).mul_(alpha / n), n, dim, sv[k1] if keep else None).add_(k)
        s = _neg_pow(s, beta, pv[k1] if keep else None)
        torch.mul(vi, s, out=yv[k1])
    return (y, scale, power) if keep else y


class _CrossChannelLRN(torch.autograd.Function):
    """LRN ACROSS_CHANNELS with lrn_layer.cpp's backward (CrossChannelBackward_cpu):
    dx = dy * scale^-beta - (2 alpha beta / n) * x * windowsum(dy * y / scale)."""

    @staticmethod
    def forward(ctx, x, n, alpha, beta, k):
        y, scale, power = lrn_across(x, n, alpha, beta, k, keep=True)
        ctx.save_for_backward(x, y, scale, power)
        ctx.coef = 2.0 * alpha * beta / n
        ctx.n = n
        return y

    @staticmethod
    def backward(ctx, dy):
        """One sample at a time in the forward's layout, each pass in cache."""
        x, y, scale, power = ctx.saved_tensors
        dx = torch.empty_like(x)
        view, dim = _lrn_layout(x)
        dyl, yl, sl, pl, xl, dxl = (view(t) for t in (dy, y, scale, power, x, dx))
        for i in range(x.shape[0]):
            k = slice(i, i + 1)
            acc = _window_sum((dyl[k] * yl[k]).div_(sl[k]), ctx.n, dim)
            acc = (xl[k] * ctx.coef).mul_(acc)
            torch.mul(dyl[k], pl[k], out=dxl[k]).sub_(acc)
        return dx, None, None, None, None
