"""Vision layers: Convolution, Deconvolution, Im2col, LRN, Crop (src/caffe/layers/<name>_layer.cpp,
base_conv_layer.cpp). Pooling and SPP live in pooling.py.

Convolution-like layers read ``convolution_param`` as BaseConvolutionLayer::LayerSetUp does (kernel /
stride / pad given once, once per spatial axis, or as the 2-D ``_h``/``_w`` fields; dilation
repeated only), treat ``axis`` as the channel axis (axes before it are independent samples, axes
after it spatial) and run torch's native convolutions (1 to 3 spatial axes) with the same weight
layout as Caffe, so autograd's gradient is Caffe's.
"""
import torch
import torch.nn.functional as F

from recaffe.protos import caffe_pb2
from . import caffe_math as cm
from .. import fastswitch
from .base import Layer, canonical_axis, count
from .precision import fp32
from .registry import register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


# Where oneDNN's NCHW convolution kernels are slow on CPU (measured with torch 2.13 on 2 AVX2 cores,
# bench/README.md "What changed in session 3"), the pass runs as a plain matrix product instead: a 1x1
# convolution is W (O x C) times X (C x pixels), its data gradient W^T G and its weight gradient the
# sum over samples of G X^T (the same sums Caffe's im2col + GEMM makes). oneDNN loses by 2-10x on
# 1x1 passes whose reduction has few channels (<= 128) on large images, on stride-2 1x1 passes, on
# 1x1 weight gradients (by 10-40%), and on weight gradients of larger kernels with very few output
# positions (<= 64, e.g. 3x3 on 7x7 at batch 1: 4-5x).
_MM_CHANNELS = 128
_MM_POSITIONS = 64


def _mm_plan(layer, x):
    """(forward, data gradient, weight gradient) each by matrix product (True) or oneDNN (False), for
    2-D convolution layer ``layer`` on the CPU tensor x (N, C, H, W); None when oneDNN does all."""
    g = layer.geo
    if g.n_sp != 2 or layer.group != 1 or not fastswitch.enabled(x) or x.dtype not in (torch.float32, torch.float64):
        return None
    one = tuple(g.kernel) == (1, 1) and tuple(g.pad) == (0, 0)
    if one:
        strided = tuple(g.stride) != (1, 1)
        plan = (strided or g.channels <= _MM_CHANNELS, strided or layer.num_output <= _MM_CHANNELS, True)
    else:
        positions = x.shape[0] * layer.top_shapes[0][-1] * layer.top_shapes[0][-2]
        plan = (False, False, positions <= _MM_POSITIONS)
    return plan if any(plan) else None


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

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.convolution_param
        _check_same_bottoms(self)
        g = self.geo = _ConvGeometry(self, p, self.bottom_shapes[0])
        if p.num_output <= 0:
            raise self.error("convolution_param.num_output must be > 0")
        if p.group <= 0 or g.channels % p.group or p.num_output % p.group:
            raise self.error(f"group {p.group} must divide both the input channels ({g.channels}) and "
                             f"num_output ({p.num_output})")
        self.group, self.num_output, self.bias_term = p.group, p.num_output, p.bias_term
        first = (g.channels, p.num_output // p.group) if self.reverse else (p.num_output, g.channels // p.group)
        self.add_blob(first + tuple(g.kernel), p.weight_filler)
        if p.bias_term:
            self.add_blob((p.num_output,), p.bias_filler)
        out = self.out_spatial()
        if any(o <= 0 for o in out):
            raise self.error(f"output spatial size {tuple(out)} is not positive for bottom "
                             f"{self.bottom_shapes[0]} (kernel {g.kernel}, stride {g.stride}, pad {g.pad}, "
                             f"dilation {g.dilation})")
        self.top_shapes = [g.outer + (p.num_output,) + tuple(out)] * len(lp.top)

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
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad) and x.is_contiguous():
            plan = _mm_plan(self, x)
            if plan is not None:
                return _ConvMM.apply(x, w, bias, tuple(g.stride), tuple(g.pad), tuple(g.dilation), plan)
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

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        g = self.geo = _ConvGeometry(self, lp.convolution_param, self.bottom_shapes[0])
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

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.lrn_param
        if p.local_size % 2 == 0:
            raise self.error(f"local_size must be odd, got {p.local_size}")
        if len(self.bottom_shapes[0]) != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width), got "
                             f"{self.bottom_shapes[0]}")
        self.n, self.alpha, self.beta, self.k = p.local_size, p.alpha, p.beta, p.k
        self.within = p.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL
        self.top_shapes = [self.bottom_shapes[0]]

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x):
        if not self.within:
            if not fastswitch.enabled(x):   # [scale-out] batched plain ops (GPU, export, compile)
                return [_lrn_across_batched(x, self.n, self.alpha, self.beta, self.k)]
            if x.dim() == 4 and x.requires_grad and torch.is_grad_enabled():
                return [_CrossChannelLRN.apply(x, self.n, self.alpha, self.beta, self.k)]
            return [_lrn_across(x, self.n, self.alpha, self.beta, self.k, keep=False)]
        sq = x * x
        if sq.device.type == "cpu":   # torch's CPU pooling is much faster channels-last (see pooling.py)
            sq = sq.contiguous(memory_format=torch.channels_last)
        sq_mean = F.avg_pool2d(sq, self.n, 1, (self.n - 1) // 2, count_include_pad=True).contiguous()
        return [x * cm.lrn_within_scale(sq_mean, self.alpha).pow(-self.beta)]


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


def _lrn_across(x, n, alpha, beta, k, keep):
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


def _lrn_across_batched(x, n, alpha, beta, k):
    """LRN ACROSS_CHANNELS on the whole batch with out-of-place ops (autograd's gradient; traceable):
    the same sums as _lrn_across, in the same order."""
    s = _window_sum((x * x) * (alpha / n), n, 1) + k
    if beta == 0.75:
        return x * (torch.rsqrt(s) * torch.rsqrt(torch.sqrt(s)))
    return x * s.pow(-beta)


class _CrossChannelLRN(torch.autograd.Function):
    """LRN ACROSS_CHANNELS with lrn_layer.cpp's backward (CrossChannelBackward_cpu):
    dx = dy * scale^-beta - (2 alpha beta / n) * x * windowsum(dy * y / scale)."""

    @staticmethod
    def forward(ctx, x, n, alpha, beta, k):
        y, scale, power = _lrn_across(x, n, alpha, beta, k, keep=True)
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


@register("Crop")
class Crop(Layer):
    """bottom[0] cropped to bottom[1]'s shape from ``axis`` on, at the given offsets (crop_layer.cpp);
    no gradient to bottom[1]."""
    exact_bottoms = 2
    exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.crop_param
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
