"""Convolution by matrix product (Caffe's im2col + GEMM) where oneDNN's CPU kernels are slow.

Measured with torch 2.13 on 2 AVX2 cores (bench/README.md "What changed in session 3"): a 1x1
convolution is W (O x C) times X (C x pixels), its data gradient W^T G and its weight gradient the sum
over samples of G X^T (the same sums Caffe's im2col + GEMM makes). oneDNN loses by 2-10x on 1x1
passes whose reduction has few channels (<= 128) on large images, on stride-2 1x1 passes, on 1x1
weight gradients (by 10-40%), and on weight gradients of larger kernels with very few output
positions (<= 64, e.g. 3x3 on 7x7 at batch 1: 4-5x). Only the passes autograd records go this way:
inference convolutions stay with oneDNN (or the fused chains, fused.py).
"""
import functools

import torch
import torch.nn.functional as F

from .switch import enabled

MM_CHANNELS = 128
MM_POSITIONS = 64


def gemm_passes(x, w, stride, pad, dilation, groups):
    """(forward, data gradient, weight gradient), each by matrix product (True) or oneDNN (False), for
    the 2-D convolution of x (N, C, H, W) with w (O, C, kh, kw); None when oneDNN does all three."""
    if x.dim() != 4 or groups != 1:
        return None
    one = tuple(w.shape[2:]) == (1, 1) and tuple(pad) == (0, 0)
    if one:
        strided = tuple(stride) != (1, 1)
        passes = (strided or x.shape[1] <= MM_CHANNELS, strided or w.shape[0] <= MM_CHANNELS, True)
    else:
        out = [(x.shape[2 + i] + 2 * pad[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
               for i in range(2)]
        passes = (False, False, x.shape[0] * out[0] * out[1] <= MM_POSITIONS)
    return passes if any(passes) else None


def conv_plan(x, w, stride, pad, dilation, groups):
    """The selector for a convolution layer's ``conv2d(x, w, b, stride, pad, dilation, groups)``: a
    function ``f(x, w, b)`` running the GEMM passes, or None for torch's own convolution. Only when
    autograd records the call (the inference passes are oneDNN's best case) on contiguous CPU
    float32 data with the fast paths on."""
    if not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad) and x.is_contiguous()
            and enabled(x, w)):
        return None
    passes = gemm_passes(x, w, stride, pad, dilation, groups)
    if passes is None:
        return None
    return functools.partial(conv2d_gemm, stride=tuple(stride), pad=tuple(pad), dilation=tuple(dilation),
                             passes=passes)


def conv2d_gemm(x, w, b, stride, pad, dilation, passes):
    """conv2d(x, w, b) (groups 1) with the passes ``passes`` says by matrix product; torch's gradients."""
    return _ConvMM.apply(x, w, b, stride, pad, dilation, passes)


def _mm_samples(a, xs, shape):
    """a @ xs[i] for every sample i, into a new tensor of ``shape`` (N, rows, ...) that is not a view
    (torch.matmul would compute the transposed product and copy it)."""
    out = xs.new_empty(shape)
    flat = out.view(xs.shape[0], a.shape[0], xs.shape[2])
    for i in range(xs.shape[0]):
        torch.mm(a, xs[i], out=flat[i])
    return out


class _ConvMM(torch.autograd.Function):
    """2-D convolution (groups 1) whose passes run as matrix products where ``plan`` says so and as
    oneDNN convolutions elsewhere; the gradients are those of F.conv2d."""

    @staticmethod
    def forward(ctx, x, w, b, stride, pad, dilation, plan):
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, pad, dilation, plan, b is not None)
        if not plan[0]:
            return F.conv2d(x, w, b, stride, pad, dilation)
        n, c = x.shape[:2]
        xs = x[:, :, ::stride[0], ::stride[1]]     # a 1x1 kernel reads only these pixels
        ho, wo = xs.shape[2:]
        y = _mm_samples(w.reshape(w.shape[0], c), xs.reshape(n, c, ho * wo), (n, w.shape[0], ho, wo))
        if b is not None:
            y += b[:, None, None]
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        stride, pad, dilation, plan, has_b = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gy = gy.contiguous()
        n, o = gy.shape[:2]
        gx = gw = gb = None
        if torch.is_grad_enabled():     # create_graph: torch's differentiable convolution backward
            plan = (False, False, False)
        onednn = [need_x and not plan[1], need_w and not plan[2], need_b and has_b]
        if onednn[0] or onednn[1]:
            gx, gw, gb = torch.ops.aten.convolution_backward(
                gy, x, w, [o] if has_b else None, list(stride), list(pad), list(dilation), False, [0, 0], 1,
                onednn)
        elif onednn[2]:
            gb = gy.sum((0, 2, 3))
        g2 = gy.view(n, o, -1)
        if need_x and plan[1]:      # 1x1 only: W^T G, scattered back to the strided pixels
            c = x.shape[1]
            if stride == (1, 1):
                gx = _mm_samples(w.reshape(o, c).t(), g2, x.shape)
            else:
                gx = x.new_zeros(x.shape)
                gx[:, :, ::stride[0], ::stride[1]] = _mm_samples(w.reshape(o, c).t(), g2, (n, c) + gy.shape[2:])
        if need_w and plan[2]:      # sum over samples of G_n cols_n^T
            if tuple(w.shape[2:]) == (1, 1):
                cols = x[:, :, ::stride[0], ::stride[1]].reshape(n, x.shape[1], -1)
            else:
                cols = F.unfold(x, w.shape[2:], dilation, pad, stride)
            gw = torch.mm(g2[0], cols[0].t())
            for i in range(1, n):
                gw.addmm_(g2[i], cols[i].t())
            gw = gw.view(w.shape)
        return gx, gw, gb, None, None, None, None
