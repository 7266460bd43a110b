"""Pooling on the CPU's fast layout (src/caffe/layers/pooling_layer.cpp semantics are the layer's).

torch's CPU pooling kernels are several times faster on channels-last data (vectorised over channels)
than on NCHW, even counting the layout copy; values and tie order are the same. MAX pooling that
autograd records then scatters the top diff straight into the NCHW bottom diff (_MaxPoolFn): autograd's
own backward would run through the channels-last copy and the crop, three extra copies of the
bottom-sized diff.
"""
import torch
import torch.nn.functional as F

from .switch import enabled


class PoolPlan:
    """What pool_plan hands out: ``layout(t)`` the copy pooling runs on, ``max_autograd(...)`` MAX
    pooling with its scatter backward."""

    @staticmethod
    def layout(t):
        return t.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def max_autograd(x, kernel, stride, pad, ceil_mode, out):
        """(top, argmax plane index), both (N, C, *out) NCHW, of torch's max_pool2d on x cropped to
        ``out``; backward to x only."""
        return _MaxPoolFn.apply(x, kernel, stride, pad, ceil_mode, out)


_PLAN = PoolPlan()


def pool_plan(x):
    """The selector for Pooling (and SPP) on the bottom x: a PoolPlan, or None for torch's pooling
    on x as it is with autograd's backward."""
    return _PLAN if enabled(x) else None


class _MaxPoolFn(torch.autograd.Function):
    """MAX pooling (channels-last) whose backward scatters the top diff to the argmax cells of the NCHW
    bottom diff, summing where windows overlap, in output row-major order as Caffe's MaxPoolBackward
    does."""

    @staticmethod
    def forward(ctx, x, kernel, stride, pad, ceil_mode, out):
        y, idx = F.max_pool2d(PoolPlan.layout(x), kernel, stride, pad, ceil_mode=ceil_mode, return_indices=True)
        y = y[..., :out[0], :out[1]].contiguous()
        idx = idx[..., :out[0], :out[1]].contiguous()
        ctx.save_for_backward(idx)
        ctx.in_shape = x.shape
        ctx.mark_non_differentiable(idx)
        return y, idx

    @staticmethod
    def backward(ctx, dy, _didx):
        idx, = ctx.saved_tensors
        n, c, h, w = ctx.in_shape
        dx = dy.new_zeros((n, c, h * w))
        dx.scatter_add_(2, idx.reshape(n, c, -1), dy.reshape(n, c, -1))
        return dx.view(n, c, h, w), None, None, None, None, None
