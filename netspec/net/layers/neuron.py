"""Element-wise (neuron) layers: one bottom, one top of the same shape (include/caffe/layers/*.hpp,
src/caffe/layers/<name>_layer.cpp).

Forward uses native torch ops and never writes into its bottom. Backward is autograd's wherever it
equals Caffe's gradient, including at the kinks: ReLU/leaky ReLU at 0 take the negative slope
(relu_layer.cpp), AbsVal takes sign(0) = 0 (absval_layer.cpp), Clip passes the gradient at both
bounds (clip_layer.cpp), ELU at 0 is alpha (elu_layer.cpp), BNLL's is sigmoid (bnll_layer.cpp).
Power's generic case divides y by the base as Caffe does (a custom Function); Threshold has none.

In place (top == bottom in the prototxt), Caffe's Backward_cpu of ReLU, ELU, Clip, BNLL, Log and
Power reads the bottom blob, which then holds the top: in-place Clip passes every gradient, in-place
leaky ReLU with a negative slope passes 1 where x < 0. Log and Power moreover write their derivative
D into the bottom diff, which is the top diff's memory, before multiplying by the top diff: their
in-place gradient is D*D, whatever the top diff. ``inplace_grad(y, dy)`` restates each of those
Backward_cpu runs and ``_CaffeInPlace`` applies it, so in-place layers give Caffe's numbers
(checked against in-place goldens); other neuron layers are unaffected by being in place.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from recaffe.protos import caffe_pb2
from .base import Layer
from .registry import register


class NeuronLayer(Layer):
    """Caffe's NeuronLayer: exactly one bottom and one top, top shaped as the bottom."""
    exact_bottoms = 1
    exact_tops = 1
    #: Caffe layers that CHECK_NE(top[0], bottom[0]) in LayerSetUp
    forbid_in_place = False

    def setup(self, p):
        lp = self.lp
        self.in_place = lp.top[0] == lp.bottom[0]
        if self.forbid_in_place and self.in_place:
            raise self.error(f"does not allow in-place computation (top '{lp.top[0]}' is its bottom)")
        self.top_shapes = [self.bottom_shapes[0]]

    def compute(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    #: layers with an ``inplace_grad`` say here whether Caffe's in-place gradient differs from autograd's
    def reads_bottom_in_backward(self):
        return False

    def forward(self, x):
        if self.in_place and self.reads_bottom_in_backward():
            return [_CaffeInPlace.apply(x, self)]
        return [self.compute(x)]


class _CaffeInPlace(torch.autograd.Function):
    """y = layer.compute(x); dx = layer.inplace_grad(y, dy): Caffe's backward of an in-place layer."""

    @staticmethod
    def forward(ctx, x, layer):
        y = layer.compute(x)
        ctx.save_for_backward(y)
        ctx.layer = layer
        return y

    @staticmethod
    def backward(ctx, dy):
        y, = ctx.saved_tensors
        return ctx.layer.inplace_grad(y, dy), None


def _f32(v):
    """A Python float holding the float32 value Caffe's Dtype arithmetic would use."""
    return float(np.float32(v))


@register("ReLU")
class ReLU(NeuronLayer):
    """max(x, 0) + negative_slope * min(x, 0); the gradient at x = 0 is the negative slope."""

    def setup(self, p):
        super().setup(p)
        self.negative_slope = _f32(p.negative_slope)

    def compute(self, x):
        if self.negative_slope == 0.0:
            return torch.relu(x)
        return F.leaky_relu(x, self.negative_slope)

    def reads_bottom_in_backward(self):
        return self.negative_slope < 0

    def inplace_grad(self, y, dy):
        return dy * torch.where(y > 0, 1.0, self.negative_slope)


@register("PReLU")
class PReLU(NeuronLayer):
    """ReLU with a learned slope per channel (axis 1) or one shared slope (prelu_layer.cpp).

    The slope blob has shape (C,) or, with channel_shared, shape () (a 0-axis Caffe blob); its
    default filler is constant 0.25."""

    @classmethod
    def blob_count(cls, lp):
        return 1

    def setup(self, p):
        super().setup(p)
        shape = self.bottom_shapes[0]
        if len(shape) < 2:
            raise self.error(f"needs a bottom with at least 2 axes, got shape {shape}")
        if len(shape) > 4:
            raise self.error(f"reads channels with Caffe's legacy accessors: at most 4 axes, got {shape}")
        self.channel_shared = p.channel_shared
        filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=0.25)
        self.add_blob(() if self.channel_shared else (shape[1],), filler)

    def compute(self, x):  # Caffe keeps a copy of the bottom when in place: no quirk
        w = self.blobs[0]
        return F.prelu(x, w.reshape(1) if self.channel_shared else w)


@register("ELU")
class ELU(NeuronLayer):
    """x if x > 0 else alpha * (exp(x) - 1) (elu_layer.cpp)."""

    def setup(self, p):
        super().setup(p)
        self.alpha = _f32(p.alpha)

    def compute(self, x):
        return F.elu(x, self.alpha)

    def reads_bottom_in_backward(self):
        return self.alpha < 0

    def inplace_grad(self, y, dy):
        return dy * torch.where(y > 0, 1.0, y + self.alpha)


@register("Sigmoid")
class Sigmoid(NeuronLayer):
    def compute(self, x):
        return torch.sigmoid(x)


@register("TanH")
class TanH(NeuronLayer):
    def compute(self, x):
        return torch.tanh(x)


@register("AbsVal")
class AbsVal(NeuronLayer):
    """|x|; gradient sign(x), 0 at 0. Caffe forbids in-place (absval_layer.cpp)."""
    forbid_in_place = True

    def compute(self, x):
        return torch.abs(x)


@register("BNLL")
class BNLL(NeuronLayer):
    """log(1 + exp(x)) computed stably; gradient exp(x)/(1+exp(x)) (bnll_layer.cpp)."""

    def compute(self, x):
        return F.softplus(x)

    def reads_bottom_in_backward(self):
        return True

    def inplace_grad(self, y, dy):
        return dy * torch.sigmoid(torch.clamp_max(y, 50.0))


@register("Swish")
class Swish(NeuronLayer):
    """x * sigmoid(beta * x) (swish_layer.cpp, Caffe master)."""

    def setup(self, p):
        super().setup(p)
        self.beta = _f32(p.beta)

    def compute(self, x):
        if self.beta == 1.0:
            return F.silu(x)
        return x * torch.sigmoid(x * self.beta)


@register("Clip")
class Clip(NeuronLayer):
    """max(min, min(x, max)); gradient passes where min <= x <= max, bounds included
    (clip_layer.cpp). With min > max Caffe outputs min everywhere and no gradient."""

    def setup(self, p):
        super().setup(p)
        self.min = _f32(p.min)
        self.max = _f32(p.max)

    def compute(self, x):
        if self.min <= self.max:
            return torch.clamp(x, self.min, self.max)
        return torch.clamp_min(torch.clamp_max(x, self.max), self.min)

    def reads_bottom_in_backward(self):
        return True

    def inplace_grad(self, y, dy):
        return dy * ((y >= self.min) & (y <= self.max))


@register("Threshold")
class Threshold(NeuronLayer):
    """1 where x > threshold (strictly), else 0; no gradient (Caffe's backward is NOT_IMPLEMENTED)."""

    def setup(self, p):
        super().setup(p)
        self.threshold = _f32(p.threshold)

    def compute(self, x):
        return (x.detach() > self.threshold).to(x.dtype)


class _PowerGeneric(torch.autograd.Function):
    """y = base^p with Caffe's gradient p * y / base (power_layer.cpp; autograd then multiplies by
    scale), which is NaN where base = 0 (0/0), as in Caffe."""

    @staticmethod
    def forward(ctx, base, p):
        y = torch.pow(base, p)
        ctx.save_for_backward(base, y)
        ctx.p = p
        return y

    @staticmethod
    def backward(ctx, dy):
        base, y = ctx.saved_tensors
        return dy * (y / base * ctx.p), None


@register("Power")
class Power(NeuronLayer):
    """(shift + scale * x)^power (power_layer.cpp). power*scale == 0 makes a constant top (1 if
    power == 0, else shift^power) with zero gradient; power 1 and 2 have closed-form gradients."""

    def setup(self, p):
        super().setup(p)
        self.power, self.scale, self.shift = _f32(p.power), _f32(p.scale), _f32(p.shift)
        self.diff_scale = _f32(np.float32(self.power) * np.float32(self.scale))
        if self.diff_scale == 0.0:
            self.const = 1.0 if self.power == 0.0 else _f32(np.power(np.float32(self.shift),
                                                                       np.float32(self.power)))

    def compute(self, x):
        if self.diff_scale == 0.0:
            return torch.full_like(x, self.const)
        base = self._base(x)
        if self.power == 1.0:
            return base
        if self.power == 2.0:
            return base * base
        return _PowerGeneric.apply(base, self.power)

    def _base(self, x):
        base = x if self.scale == 1.0 else x * self.scale
        return base if self.shift == 0.0 else base + self.shift

    def reads_bottom_in_backward(self):
        return self.diff_scale != 0.0

    def inplace_grad(self, y, dy):
        """Caffe writes D (from bottom = top = y) into the shared diff, then squares it."""
        if self.power == 1.0:
            d = torch.full_like(y, self.diff_scale)
        elif self.power == 2.0:
            d = y * _f32(np.float32(self.diff_scale) * np.float32(self.scale)) + self.diff_scale * self.shift
        elif self.shift == 0.0:
            d = y / y * self.power
        else:
            d = y / self._base(y) * self.diff_scale
        return d * d


def _log_base(layer, base, allow_one):
    """Caffe's log_base for Exp/Log: 1 for base -1 (e), else ln(base) with base > 0; Log also needs
    1/ln(base) finite (base != 1)."""
    if base == -1.0:
        return 1.0
    if not base > 0:
        raise layer.error(f"base must be strictly positive (or -1 for e), got {base}")
    lb = _f32(math.log(base))
    if not math.isfinite(lb) or (lb == 0.0 and not allow_one):
        raise layer.error(f"1/log(base) is not finite for base {base}: use a positive base other than 1")
    return lb


@register("Exp")
class Exp(NeuronLayer):
    """base^(shift + scale * x), computed as outer * exp(inner * x) with inner = ln(base)*scale and
    outer = base^shift (exp_layer.cpp)."""

    def setup(self, p):
        super().setup(p)
        base = _f32(p.base)
        log_base = _log_base(self, base, allow_one=True)
        self.inner = _f32(np.float32(log_base) * np.float32(p.scale))
        if p.shift == 0:
            self.outer = 1.0
        else:
            self.outer = _f32(math.exp(p.shift) if base == -1.0 else math.pow(base, _f32(p.shift)))

    def compute(self, x):
        y = torch.exp(x if self.inner == 1.0 else x * self.inner)
        return y if self.outer == 1.0 else y * self.outer


@register("Log")
class Log(NeuronLayer):
    """log_base(shift + scale * x) = ln(shift + scale * x) / ln(base) (log_layer.cpp)."""

    def setup(self, p):
        super().setup(p)
        log_base = _log_base(self, _f32(p.base), allow_one=False)
        self.base_scale = _f32(1.0 / log_base)
        self.scale, self.shift = _f32(p.scale), _f32(p.shift)
        self.backward_num_scale = _f32(self.scale / log_base)

    def _arg(self, x):
        u = x if self.scale == 1.0 else x * self.scale
        return u if self.shift == 0.0 else u + self.shift

    def compute(self, x):
        y = torch.log(self._arg(x))
        return y if self.base_scale == 1.0 else y * self.base_scale

    def reads_bottom_in_backward(self):
        return True

    def inplace_grad(self, y, dy):
        """Caffe computes D from bottom = y into the (shared) diff, then squares it."""
        d = torch.reciprocal(self._arg(y)) * self.backward_num_scale
        return d * d


def is_train(layer):
    """The layer's own phase if its LayerParameter sets one (Net::Init), else the net's."""
    if layer.lp.HasField("phase"):
        return layer.lp.phase == caffe_pb2.TRAIN
    return layer.phase in ("TRAIN", caffe_pb2.TRAIN)


@register("Dropout")
class Dropout(NeuronLayer):
    """TRAIN: y = x * mask / (1 - ratio), mask ~ Bernoulli(1 - ratio) drawn from torch's generator
    (Caffe scales at train time, dropout_layer.cpp); TEST: identity. Which one is decided by the
    layer's phase, as in Caffe, not by nn.Module.train()/eval()."""

    def setup(self, p):
        super().setup(p)
        self.ratio = _f32(p.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.train_phase = is_train(self)
        self.scale = _f32(1.0 / (1.0 - self.ratio))  # Caffe: 1. / (1. - threshold_), in double

    def compute(self, x):
        if not self.train_phase or self.ratio == 0.0:
            return x
        with torch.no_grad():  # keep iff u >= ratio (probability 1 - ratio); scaled mask, no grad
            mask = torch.rand_like(x).ge_(self.ratio).mul_(self.scale)
        return x * mask
