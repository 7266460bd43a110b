"""Vision layers: Convolution, Deconvolution, Im2col, LRN, Crop (src/caffe/layers/<name>_layer.cpp,
base_conv_layer.cpp). Pooling and SPP live in pooling.py.

Convolution-like layers read ``convolution_param`` as BaseConvolutionLayer::LayerSetUp does (kernel /
stride / pad given once, once per spatial axis, or as the 2-D ``_h``/``_w`` fields; dilation
repeated only), treat ``axis`` as the channel axis (axes before it are independent samples, axes
after it spatial) and run torch's native convolutions (1 to 3 spatial axes) with the same weight
layout as Caffe, so autograd's gradient is Caffe's. Convolution and LRN ask netspec.net.kernels for a
CPU fast path (conv_plan, lrn_plan) and otherwise run the plain ops written here.
"""
import torch.nn.functional as F

from recaffe.protos import caffe_pb2, limits
from recaffe.protos.errors import NetError
from .. import kernels
from . import caffe_math as cm
from .base import Layer, canonical_axis, count
from .precision import fp32
from .registry import register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _per_axis(layer, p, name, n_sp, default, hw=None):
    """One spatial quantity: the ``hw``_h/``hw``_w pair (2-D only, not mixed with the repeated field)
    or the repeated ``name`` given 0 (default), 1 or n_sp times (base_conv_layer.cpp)."""
    rep = list(getattr(p, name))
    if hw and (p.HasField(hw + "_h") or p.HasField(hw + "_w")):
        if n_sp != 2:
            raise layer.error(f"{hw}_h/{hw}_w can only be used for 2-D convolution ({n_sp} spatial axes)")
        if rep:
            raise layer.error(f"give either {name} or {hw}_h/{hw}_w, not both")
        return [getattr(p, hw + "_h"), getattr(p, hw + "_w")]
    if default is None and not rep:
        raise layer.error(f"{name} must be given (once, or once per spatial axis: {n_sp})")
    if len(rep) not in (0, 1, n_sp):
        raise layer.error(f"{name} must be given once or once per spatial axis ({n_sp}), got {len(rep)} values")
    if not rep:
        return [default] * n_sp
    return [rep[0] if len(rep) == 1 else rep[i] for i in range(n_sp)]


class _ConvGeometry:
    """Channel axis, spatial sizes, kernel/stride/pad/dilation of a convolution-like layer."""

    def __init__(self, layer, p, shape):
        self.axis = canonical_axis(layer, p.axis, len(shape))
        self.n_sp = len(shape) - self.axis - 1
        if not 1 <= self.n_sp <= 3:
            raise layer.error(f"supports 1 to 3 spatial axes after the channel axis {self.axis}, "
                              f"bottom {tuple(shape)} has {self.n_sp}")
        self.kernel = _per_axis(layer, p, "kernel_size", self.n_sp, None, "kernel")
        self.stride = _per_axis(layer, p, "stride", self.n_sp, 1, "stride")
        self.pad = _per_axis(layer, p, "pad", self.n_sp, 0, "pad")
        self.dilation = _per_axis(layer, p, "dilation", self.n_sp, 1)
        for what, vals in (("kernel size", self.kernel), ("stride", self.stride), ("dilation", self.dilation)):
            if any(v <= 0 for v in vals):
                raise layer.error(f"{what} must be > 0 on every spatial axis, got {vals}")
        self.outer = tuple(shape[:self.axis])
        self.channels = shape[self.axis]
        self.spatial = tuple(shape[self.axis + 1:])

    def as_batch(self, x):
        """View x as (samples, C, *spatial) for torch's convolutions."""
        return x.reshape((-1, self.channels) + self.spatial)


def _check_same_bottoms(layer):
    for i, s in enumerate(layer.bottom_shapes[1:], 1):
        if s != layer.bottom_shapes[0]:
            raise layer.error(f"all bottoms must have the same shape: bottom {i} is {s}, bottom 0 "
                              f"{layer.bottom_shapes[0]}")


class _BaseConv(Layer):
    """Caffe's BaseConvolutionLayer: bottoms >= 1, one top per bottom, shared weights."""
    min_bottoms = 1
    min_tops = 1
    equal_bottom_top = True
    reverse = False
    param_field = "convolution_param"

    @classmethod
    def blob_count(cls, lp):
        return 1 + bool(lp.convolution_param.bias_term)

    def setup(self, p):
        _check_same_bottoms(self)
        g = self.geo = _ConvGeometry(self, p, self.bottom_shapes[0])
        if p.num_output <= 0:
            raise self.error("convolution_param.num_output must be > 0")
        if p.group <= 0 or g.channels % p.group or p.num_output % p.group:
            raise self.error(f"group {p.group} must divide both the input channels ({g.channels}) and "
                             f"num_output ({p.num_output})")
        self.group, self.num_output, self.bias_term = p.group, p.num_output, p.bias_term
        first = (g.channels, p.num_output // p.group) if self.reverse else (p.num_output, g.channels // p.group)
        out = self.out_spatial()      # checked before the weights are allocated (a huge kernel)
        if any(o <= 0 for o in out):
            raise self.error(f"output spatial size {tuple(out)} is not positive for bottom "
                             f"{self.bottom_shapes[0]} (kernel {g.kernel}, stride {g.stride}, pad {g.pad}, "
                             f"dilation {g.dilation})")
        self.add_blob(first + tuple(g.kernel), p.weight_filler)
        if p.bias_term:
            self.add_blob((p.num_output,), p.bias_filler)
        self.top_shapes = [g.outer + (p.num_output,) + tuple(out)] * len(self.lp.top)

    def forward(self, *xs):
        bias = self.blobs[1] if self.bias_term else None
        out = []
        for x in xs:    # no-op reshapes would make views (autograd ViewBackward, no in-place ReLU after)
            y = self.conv(self.geo.as_batch(x), bias)
            if len(self.geo.outer) != 1:   # samples over several axes: back to them (any batch)
                y = y.reshape(tuple(x.shape[:self.geo.axis]) + tuple(self.top_shapes[0][self.geo.axis:]))
            out.append(y)
        return out


@register("Convolution")
class Convolution(_BaseConv):
    """y = conv(x, W) + b (conv_layer.cpp); W (num_output, C/group, *kernel)."""
    classifier = True

    def out_spatial(self):
        g = self.geo
        out = [cm.conv_out_size(*a) for a in zip(g.spatial, g.kernel, g.pad, g.stride, g.dilation)]
        # Caffe's truncating division can give one more output than the padded input holds (a
        # numerator in (-stride, 0)); im2col reads those cells as 0, so pad them on the far side.
        self.extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - (i + 2 * pd)) for o, i, k, pd, s, d in
                      zip(out, g.spatial, g.kernel, g.pad, g.stride, g.dilation)]
        return out

    def conv(self, x, bias):
        g = self.geo
        if any(self.extra):
            pads = []
            for e in reversed(self.extra):
                pads += [0, e]
            x = F.pad(x, pads)
        w = self.blobs[0]
        fast = kernels.conv_plan(x, w, g.stride, g.pad, g.dilation, self.group)
        if fast is not None:
            return fast(x, w, bias)
        return _CONV[g.n_sp](x, w, bias, g.stride, g.pad, g.dilation, self.group)


@register("Deconvolution")
class Deconvolution(_BaseConv):
    """The transpose of Convolution (deconv_layer.cpp); W (C_in, num_output/group, *kernel), the
    layout of torch's conv_transpose."""
    reverse = True

    def out_spatial(self):
        g = self.geo
        return [cm.deconv_out_size(*a) for a in zip(g.spatial, g.kernel, g.pad, g.stride, g.dilation)]

    def conv(self, x, bias):
        g = self.geo
        return _DECONV[g.n_sp](x, self.blobs[0], bias, g.stride, g.pad, 0, self.group, g.dilation)


@register("Im2col")
class Im2col(Layer):
    """Caffe's column buffer as a top (im2col_layer.cpp): (outer, C*kh*kw, out_h, out_w), rows in
    (channel, kernel row, kernel column) order, as torch's unfold. 2-D only here."""
    exact_bottoms = 1
    exact_tops = 1
    param_field = "convolution_param"

    def setup(self, p):
        g = self.geo = _ConvGeometry(self, p, self.bottom_shapes[0])
        if g.n_sp != 2:
            raise self.error(f"is implemented for 2 spatial axes, bottom {self.bottom_shapes[0]} has {g.n_sp}")
        out = [cm.conv_out_size(*a) for a in zip(g.spatial, g.kernel, g.pad, g.stride, g.dilation)]
        if any(o <= 0 for o in out):
            raise self.error(f"output spatial size {tuple(out)} is not positive")
        self.top_shapes = [g.outer + (g.channels * count(g.kernel),) + tuple(out)]

    def forward(self, x):
        g = self.geo
        cols = F.unfold(g.as_batch(x), g.kernel, g.dilation, g.pad, g.stride)
        return [cols.reshape(self.top_shapes[0])]


@register("LRN")
class LRN(Layer):
    """Local response normalisation (lrn_layer.cpp), 4-D bottoms.

    ACROSS_CHANNELS: y = x * (k + alpha/n * sum over n neighbouring channels of x^2)^-beta.
    WITHIN_CHANNEL: y = x * (1 + alpha/n^2 * sum over the zero-padded n x n window of x^2)^-beta
    (Caffe builds it from AVE pooling with padding, so the divisor is always n^2 and k is unused)."""
    exact_bottoms = 1
    exact_tops = 1

    def setup(self, p):
        if p.local_size % 2 == 0:
            raise self.error(f"local_size must be odd, got {p.local_size}")
        if len(self.bottom_shapes[0]) != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width), got "
                             f"{self.bottom_shapes[0]}")
        self.n, self.alpha, self.beta, self.k = p.local_size, p.alpha, p.beta, p.k
        self.within = p.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL
        _, c, h, w = self.bottom_shapes[0]
        if self.within and p.local_size > limits.INT_MAX:
            # Caffe hands local_size to its Pooling layer as an int kernel_size (lrn_layer.cpp LayerSetUp)
            raise self.error(f"local_size {p.local_size} is over {limits.INT_MAX} (the int kernel of the "
                             f"WITHIN_CHANNEL pooling)")
        if not self.within:     # CrossChannelForward's padded_square: (1, channels + local_size - 1, h, w)
            limits.check_blob((1, c + p.local_size - 1, h, w), f"layer '{self.name}' ({self.type}): local_size "
                              f"{p.local_size} pads the channels to", NetError)
        self.top_shapes = [self.bottom_shapes[0]]

    @fp32   # float32 under autocast (layers/precision.py)
    def forward(self, x):
        fast = kernels.lrn_plan(x, self.n, self.alpha, self.beta, self.k, self.within)
        if fast is not None:
            return [fast(x)]
        n, half = self.n, (self.n - 1) // 2
        sq = x * x
        if self.within:
            scale = cm.lrn_within_scale(F.avg_pool2d(sq, n, 1, half, count_include_pad=True), self.alpha)
        else:   # the window over channels as an (n, 1) pooling of the (N, 1, C, H*W) squares
            N, C, H, W = x.shape
            mean = F.avg_pool2d(sq.reshape(N, 1, C, H * W), (n, 1), 1, (half, 0), count_include_pad=True)
            scale = cm.lrn_across_scale(mean.reshape(x.shape), self.alpha, self.k)
        return [x * scale.pow(-self.beta)]


@register("Crop")
class Crop(Layer):
    """bottom[0] cropped to bottom[1]'s shape from ``axis`` on, at the given offsets (crop_layer.cpp);
    no gradient to bottom[1]."""
    exact_bottoms = 2
    exact_tops = 1

    def setup(self, p):
        data, ref = self.bottom_shapes
        nd = len(data)
        start = canonical_axis(self, p.axis, nd)
        offs = list(p.offset)
        if len(offs) > 1 and start + len(offs) != nd:
            raise self.error(f"needs one offset per cropped axis ({nd - start} for axis {start} of a "
                             f"{nd}-axis bottom) or a single one, got {len(offs)}")
        if len(ref) < nd:
            raise self.error(f"reference bottom {ref} has fewer axes than the data bottom {data}")
        self.slices, top = [], []
        for i in range(nd):
            if i < start:
                self.slices.append(slice(None))
                top.append(data[i])
                continue
            off = offs[0] if len(offs) == 1 else (offs[i - start] if offs else 0)
            if data[i] - off < ref[i]:
                raise self.error(f"crop of axis {i} is out of bounds: size {ref[i]} at offset {off} does not "
                                 f"fit in {data[i]}")
            self.slices.append(slice(off, off + ref[i]))
            top.append(ref[i])
        self.top_shapes = [tuple(top)]

    def forward(self, x, ref):
        return [x[tuple(self.slices)]]
