"""Linear layers: InnerProduct, Embed, Scale, Bias, Parameter (src/caffe/layers/<name>_layer.cpp).

All are single matrix products or broadcasts, so autograd's gradient is Caffe's. Embed gives no
gradient to its index bottom (Caffe aborts if asked for one). InnerProduct asks netspec.net.kernels
(linear_plan) for its CPU fast path: oneDNN's inner product, and the weight gradient written into a
persistent buffer as Caffe's weight diff.
"""
import torch
import torch.nn.functional as F

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from .. import kernels
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
    classifier = True

    @classmethod
    def blob_count(cls, lp):
        return 1 + bool(lp.inner_product_param.bias_term)

    def setup(self, p):
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
        fast = kernels.linear_plan(x2, w, b, self.transpose)
        if fast is not None:
            y = fast(x2, w, b)
        elif self.transpose:
            y = torch.addmm(b, x2, w) if b is not None else x2 @ w
        else:
            y = F.linear(x2, w, b)
        if self.axis == 1:     # (N, num_output) already, for any batch N (dynamic-batch export)
            return [y]
        return [y.reshape(tuple(x.shape[:self.axis]) + tuple(self.top_shapes[0][self.axis:]))]


@register("Embed")
class Embed(Layer):
    """y = W[int(x)] + b (embed_layer.cpp); W (input_dim, num_output); indices are truncated toward
    zero and must lie in [0, input_dim)."""
    exact_bottoms = 1
    exact_tops = 1

    @classmethod
    def blob_count(cls, lp):
        return 1 + bool(lp.embed_param.bias_term)

    def setup(self, p):
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

    @classmethod
    def blob_count(cls, lp):
        return (len(lp.bottom) == 1) + bool(lp.scale_param.bias_term)

    def setup(self, p):
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

    @classmethod
    def blob_count(cls, lp):
        return int(len(lp.bottom) == 1)

    def setup(self, p):
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

    @classmethod
    def blob_count(cls, lp):
        return 1

    def setup(self, p):
        shape = tuple(p.shape.dim)
        self.add_blob(shape)
        self.top_shapes = [shape]

    def forward(self):
        return [self.blobs[0]]
