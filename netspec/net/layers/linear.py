"""Linear layers: InnerProduct, Embed, Scale, Bias, Parameter (src/caffe/layers/<name>_layer.cpp).

All are single matrix products or broadcasts, so autograd's gradient is Caffe's. Embed gives no
gradient to its index bottom (Caffe aborts if asked for one).

InnerProduct writes its weight gradient into a persistent buffer (Caffe's weight diff) instead of
autograd's fresh 151 MB tensor per step for CaffeNet's fc6 (page faults made that GEMM 4x slower);
the numbers are autograd's, bit for bit.
"""
import torch
import torch.nn.functional as F

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from .. import fastswitch
from .base import Layer, canonical_axis, count
from .registry import register


def _constant(value):
    return caffe_pb2.FillerParameter(type="constant", value=value)


@register("InnerProduct")
class InnerProduct(Layer):
    """y = x_flat W^T + b with x flattened from ``axis`` on (inner_product_layer.cpp);
    W (num_output, K), or (K, num_output) with ``transpose``."""
    exact_bottoms = 1
    exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.inner_product_param
        shape = self.bottom_shapes[0]
        self.axis = canonical_axis(self, p.axis, len(shape))
        if p.num_output <= 0:
            raise self.error("inner_product_param.num_output must be > 0")
        self.K, self.transpose, self.bias_term = count(shape, self.axis), p.transpose, p.bias_term
        self.add_blob((self.K, p.num_output) if p.transpose else (p.num_output, self.K), p.weight_filler)
        if p.bias_term:
            self.add_blob((p.num_output,), p.bias_filler)
        self.top_shapes = [shape[:self.axis] + (p.num_output,)]

    def forward(self, x):
        x2 = x.reshape(-1, self.K)
        w = self.blobs[0]
        b = self.blobs[1] if self.bias_term else None
        if w.requires_grad and w.is_leaf and torch.is_grad_enabled() and fastswitch.enabled(x2):
            y = _InnerProductFn.apply(x2, w, b, self.transpose)
        else:
            graph_free = not torch.is_grad_enabled() or not (
                x2.requires_grad or w.requires_grad or (b is not None and b.requires_grad))
            y = _inner_product(x2, w, b, self.transpose, graph_free)
        if self.axis == 1:     # (N, num_output) already, for any batch N
            return [y]
        return [y.reshape(tuple(x.shape[:self.axis]) + tuple(self.top_shapes[0][self.axis:]))]


#: oneDNN's inner product on the plain (N, K) weight: 1.8-2.1x faster than F.linear's GEMM for
#: Caffe-sized batches here (CaffeNet fc6 at batch 10: 12 vs 26 ms, 2 threads); no autograd formula,
#: so only where no graph is recorded
_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_linear_ok(x2, w):
    return (_ONEDNN_LINEAR and fastswitch.enabled(x2) and x2.dtype == torch.float32
            and w.dtype == torch.float32 and w.is_contiguous())


def onednn_linear(x2, w, b, attr="none"):
    """x2 W^T + b, then ``attr`` ("none" or "relu"), by oneDNN (see onednn_linear_ok); no autograd."""
    return torch.ops.mkldnn._linear_pointwise(x2.contiguous(), w, b, attr, [], "")


def _inner_product(x2, w, b, transpose, graph_free=False):
    if transpose:
        return torch.addmm(b, x2, w) if b is not None else x2 @ w
    if graph_free and onednn_linear_ok(x2, w):
        return onednn_linear(x2, w, b)
    return F.linear(x2, w, b)


class _InnerProductFn(torch.autograd.Function):
    """Autograd's linear/addmm, the weight gradient written by this backward itself: with
    ``w.grad`` None, ``mm(out=)`` into the weight's persistent buffer ``w._caffe_diff`` (allocated
    once; like Caffe's diff it is overwritten by the next backward), which becomes ``w.grad``;
    otherwise the product is added onto ``w.grad`` (iter_size > 1, shared weights) as autograd's
    AccumulateGrad does. Under ``create_graph`` (grad mode on in backward) the gradient goes back through autograd
    as usual. Hooks registered on the weight do not see this gradient."""

    @staticmethod
    def forward(ctx, x2, w, b, transpose):
        ctx.save_for_backward(x2, w)
        ctx.transpose, ctx.weight = transpose, w
        return _inner_product(x2, w, b, transpose, graph_free=True)   # no graph inside a Function

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


@register("Embed")
class Embed(Layer):
    """y = W[int(x)] + b (embed_layer.cpp); W (input_dim, num_output); indices are truncated toward
    zero and must lie in [0, input_dim)."""
    exact_bottoms = 1
    exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.embed_param
        if p.num_output <= 0 or p.input_dim <= 0:
            raise self.error(f"embed_param.num_output ({p.num_output}) and input_dim ({p.input_dim}) must be > 0")
        self.input_dim, self.bias_term = p.input_dim, p.bias_term
        self.add_blob((p.input_dim, p.num_output), p.weight_filler)
        if p.bias_term:
            self.add_blob((p.num_output,), p.bias_filler)
        self.top_shapes = [self.bottom_shapes[0] + (p.num_output,)]

    def forward(self, x):
        idx = x.detach().long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.input_dim):
            raise NetError(f"layer '{self.name}' (Embed): index out of range [0, {self.input_dim}): "
                           f"min {int(idx.min())}, max {int(idx.max())}")
        y = F.embedding(idx, self.blobs[0])
        if self.bias_term:
            y = y + self.blobs[1]
        return [y]


def _broadcast_setup(layer, p, bottom_shapes, what):
    """Shared by Scale and Bias (scale_layer.cpp / bias_layer.cpp LayerSetUp + Reshape): the shape of
    the learned operand (one bottom) and the axis at which the operand applies. Returns
    (param_shape or None, axis, operand_shape)."""
    x = bottom_shapes[0]
    if len(bottom_shapes) == 1:
        axis = canonical_axis(layer, p.axis, len(x))
        if p.num_axes < -1:
            raise layer.error(f"num_axes must be >= 0, or -1 for all axes after axis, got {p.num_axes}")
        if p.num_axes >= 0 and len(x) < axis + p.num_axes:
            raise layer.error(f"{what} blob with num_axes {p.num_axes} from axis {axis} extends past the "
                              f"bottom's {len(x)} axes {x}")
        operand = x[axis:] if p.num_axes == -1 else x[axis:axis + p.num_axes]
        param_shape = operand
    else:
        operand, param_shape = bottom_shapes[1], None
    axis = 0 if len(operand) == 0 else canonical_axis(layer, p.axis, len(x))
    if len(x) < axis + len(operand) or tuple(x[axis:axis + len(operand)]) != tuple(operand):
        raise layer.error(f"{what} shape {tuple(operand)} does not match bottom {x} at axes "
                          f"{axis}..{axis + len(operand) - 1}")
    return param_shape, axis, tuple(operand)


def _view(operand, axis, n_axes):
    """``operand`` reshaped to broadcast against an n_axes bottom from ``axis``."""
    k = operand.dim()
    return operand.reshape((1,) * axis + tuple(operand.shape) + (1,) * (n_axes - axis - k))


@register("Scale")
class Scale(Layer):
    """y = x * s (+ b) with s broadcast over a block of axes (scale_layer.cpp). One bottom: s is a
    learned blob of shape bottom.shape[axis:axis+num_axes] (num_axes -1: to the end, 0: scalar;
    filler default constant 1). Two bottoms: s = bottom[1]. bias_term adds a learned bias shaped like
    s (bias_filler default 0). Blobs: [s, bias] or [bias]."""
    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.scale_param
        param_shape, self.axis, operand = _broadcast_setup(self, p, self.bottom_shapes, "scale")
        if param_shape is not None:
            self.add_blob(param_shape, p.filler if p.HasField("filler") else _constant(1.0))
        self.bias_term = p.bias_term
        if p.bias_term:   # Caffe's internal Bias layer: same axis, num_axes = the scale's
            bp = caffe_pb2.BiasParameter(axis=p.axis, num_axes=len(operand) if len(self.bottom_shapes) > 1
                                         else p.num_axes)
            bshape, self.bias_axis, _ = _broadcast_setup(self, bp, self.bottom_shapes[:1], "bias")
            self.add_blob(bshape, p.bias_filler)
        self.top_shapes = [self.bottom_shapes[0]]

    def forward(self, x, *s):
        n = x.dim()
        scale = s[0] if s else self.blobs[0]
        if self.bias_term:
            return [torch.addcmul(_view(self.blobs[-1], self.bias_axis, n), x, _view(scale, self.axis, n))]
        return [x * _view(scale, self.axis, n)]


@register("Bias")
class Bias(Layer):
    """y = x + b with b broadcast as in Scale (bias_layer.cpp); b a learned blob (filler default
    constant 0) or bottom[1]."""
    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.bias_param
        param_shape, self.axis, _ = _broadcast_setup(self, p, self.bottom_shapes, "bias")
        if param_shape is not None:
            self.add_blob(param_shape, p.filler)
        self.top_shapes = [self.bottom_shapes[0]]

    def forward(self, x, *b):
        bias = b[0] if b else self.blobs[0]
        return [x + _view(bias, self.axis, x.dim())]


@register("Parameter")
class Parameter(Layer):
    """No bottoms; its one blob (parameter_param.shape, zero-initialised, no filler) is the top
    (parameter_layer.hpp: the top shares the blob's data and diff)."""
    exact_bottoms = 0
    exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        shape = tuple(lp.parameter_param.shape.dim)
        self.add_blob(shape)
        self.top_shapes = [shape]

    def forward(self):
        return [self.blobs[0]]
