"""InnerProduct's CPU fast paths (src/caffe/layers/inner_product_layer.cpp): oneDNN's inner product
where no graph is recorded, and a weight gradient written into a persistent buffer where one is.

* oneDNN's inner product on the plain (N, K) weight is 1.8-2.1x faster than F.linear's GEMM for
  Caffe-sized batches here (CaffeNet fc6 at batch 10: 12 vs 26 ms, 2 threads). It has no autograd
  formula, so it runs only where no graph is recorded (and inside the Function below).
* Autograd allocates a fresh weight gradient each step (151 MB for CaffeNet's fc6, whose page faults
  made that GEMM 4x slower); _InnerProductFn writes it into one buffer per weight instead, as Caffe's
  diff, with autograd's numbers bit for bit.
"""
import functools

import torch
import torch.nn.functional as F

from .switch import enabled

ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def linear_plan(x2, w, b, transpose):
    """The selector for InnerProduct's ``x2 W^T + b`` (``x2 W + b`` with transpose) on the flattened
    bottom x2: a function ``f(x2, w, b)``, or None for the layer's plain torch ops."""
    if not enabled(x2, w, b):
        return None
    if w.requires_grad and w.is_leaf and torch.is_grad_enabled():
        return functools.partial(inner_product_buffered, transpose=transpose)
    graph_free = not torch.is_grad_enabled() or not (
        x2.requires_grad or w.requires_grad or (b is not None and b.requires_grad))
    if graph_free and not transpose and onednn_linear_ok(x2, w):
        return onednn_linear
    return None


def onednn_linear_ok(x2, w):
    """Whether oneDNN's inner product can take x2 (N, K) and the plain weight w (O, K)."""
    return ONEDNN_LINEAR and w.is_contiguous() and enabled(x2, w)


def onednn_linear(x2, w, b, attr="none"):
    """x2 W^T + b, then ``attr`` ("none" or "relu"), by oneDNN (see onednn_linear_ok); no autograd."""
    return torch.ops.mkldnn._linear_pointwise(x2.contiguous(), w, b, attr, [], "")


def inner_product_buffered(x2, w, b, transpose):
    """The inner product recorded for autograd with the weight gradient in a persistent buffer."""
    return _InnerProductFn.apply(x2, w, b, transpose)


def _graph_free_product(x2, w, b, transpose):
    if transpose:
        return torch.addmm(b, x2, w) if b is not None else x2 @ w
    if onednn_linear_ok(x2, w):
        return onednn_linear(x2, w, b)
    return F.linear(x2, w, b)


class _InnerProductFn(torch.autograd.Function):
    """Autograd's linear/addmm, the weight gradient written by this backward itself: with
    ``w.grad`` None, ``mm(out=)`` into the weight's persistent buffer ``w._caffe_diff`` (allocated
    once; like Caffe's diff it is overwritten by the next backward), which becomes ``w.grad``;
    otherwise the product is added onto ``w.grad`` (iter_size > 1, shared weights) as autograd's
    AccumulateGrad does. Under ``create_graph`` (grad mode on in backward) the gradient goes back
    through autograd as usual. Hooks registered on the weight do not see this gradient."""

    @staticmethod
    def forward(ctx, x2, w, b, transpose):
        ctx.save_for_backward(x2, w)
        ctx.transpose, ctx.weight = transpose, w
        return _graph_free_product(x2, w, b, transpose)   # no graph inside a Function

    @staticmethod
    def backward(ctx, dy):
        x2, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dw = db = None
        if need_x:
            dx = dy.mm(w.t()) if ctx.transpose else dy.mm(w)
        if need_b:
            db = dy.sum(0)
        if need_w:
            a, m = (x2.t(), dy) if ctx.transpose else (dy.t(), x2)
            p = ctx.weight
            if torch.is_grad_enabled():
                dw = a.mm(m)
            elif p.grad is None:
                buf = getattr(p, "_caffe_diff", None)
                if buf is None or buf.shape != p.shape or buf.dtype != p.dtype or buf.device != p.device:
                    buf = torch.empty_like(p, memory_format=torch.contiguous_format)
                    p._caffe_diff = buf
                p.grad = torch.mm(a, m, out=buf)
            else:   # autograd's accumulation (grad += new), not a fused addmm_: same rounding
                p.grad.add_(torch.mm(a, m))
        return dx, dw, db, None
