"""Pooling and SPP (src/caffe/layers/pooling_layer.cpp/.cu, spp_layer.cpp).

Output sizes follow Caffe (caffe_math.pooled_size: ceil or floor, then the "last window starts
inside the padded image" clip only when there is padding). Whenever torch's own pooling produces
at least Caffe's windows (same starts; torch's ceil mode clips like Caffe with padding), the fast
native op runs and surplus rows/columns are sliced off; otherwise (pad > kernel/2, or a CEIL window
starting past an unpadded input) the input is padded explicitly (-inf for MAX, 0 for AVE).

On the CPU the pooling ops run on a channels-last copy of the input (torch's NCHW CPU pooling
kernels are not vectorised; the copy pays for itself several times over), MAX with a scatter
backward: netspec.net.kernels.pool_plan, which hands out that layout where the fast paths are on.

* MAX ignores padding, keeps the first maximum in row-major order (torch's CPU and CUDA kernels
  update on strictly greater, as Caffe does), the optional 2nd top is Caffe's argmax h*W+w as a
  float; a window holding no input gives -FLT_MAX and mask -1, and no gradient.
* AVE divides the in-image sum by the window size clipped at the padded border (caffe_math.
  ave_pool_divisor) = torch's count_include_pad rule.
* STOCHASTIC (Caffe: GPU only): TEST gives sum(x^2)/sum(x) per window (0 when the sum is <= 0);
  TRAIN samples a cell with probability proportional to its value (torch's RNG, so not Caffe's draws)
  and routes the gradient to it.
"""
import torch
import torch.nn.functional as F

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from .. import kernels
from . import caffe_math as cm
from .base import Layer
from .registry import register

_PP = caffe_pb2.PoolingParameter


def _pool_geometry(layer, p, shape):
    """(kernel, stride, pad) pairs from PoolingParameter, with LayerSetUp's checks."""
    has = p.HasField
    if p.global_pooling:
        if has("kernel_size") or has("kernel_h") or has("kernel_w"):
            raise layer.error("with global_pooling: true the kernel size cannot be given")
        kernel = (shape[2], shape[3])
    else:
        if has("kernel_size") == (has("kernel_h") and has("kernel_w")):
            raise layer.error("give the kernel as kernel_size OR both kernel_h and kernel_w")
        kernel = (p.kernel_size,) * 2 if has("kernel_size") else (p.kernel_h, p.kernel_w)
    for name in ("pad", "stride"):
        h, w = has(name + "_h"), has(name + "_w")
        if (h or w) and (has(name) or not (h and w)):
            raise layer.error(f"give {name} OR both {name}_h and {name}_w")
    pad = (p.pad_h, p.pad_w) if has("pad_h") else (p.pad,) * 2
    stride = (p.stride_h, p.stride_w) if has("stride_h") else (p.stride,) * 2
    if min(kernel) <= 0 or min(stride) <= 0:
        raise layer.error(f"kernel {kernel} and stride {stride} must be > 0")
    if p.global_pooling and (any(pad) or stride != (1, 1)):
        raise layer.error(f"with global_pooling: true only pad 0 and stride 1 are allowed, got pad {pad}, "
                          f"stride {stride}")
    if any(pad):
        if p.pool not in (_PP.MAX, _PP.AVE):
            raise layer.error("padding is implemented only for MAX and AVE pooling")
        if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
            raise layer.error(f"pad {pad} must be smaller than the kernel {kernel}")
    return kernel, stride, pad


@register("Pooling")
class Pooling(Layer):
    """MAX / AVE / STOCHASTIC pooling of a 4-D bottom (pooling_layer.cpp); 2 tops only for MAX."""
    exact_bottoms = 1
    min_tops = 1
    max_tops = 2

    def setup(self, p):
        lp = self.lp
        self.pool = p.pool
        if len(lp.top) == 2 and p.pool != _PP.MAX:
            raise self.error("a second (mask) top is only produced by MAX pooling")
        shape = self.bottom_shapes[0]
        if len(shape) != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width), got {shape}")
        k, s, pd = self.kernel, self.stride, self.pad = _pool_geometry(self, p, shape)
        ceil, clip = p.round_mode == _PP.CEIL, any(pd)
        size = shape[2:]
        self.out = tuple(cm.pooled_size(size[i], k[i], pd[i], s[i], ceil, clip) for i in range(2))
        if min(self.out) <= 0:
            raise self.error(f"pooled size {self.out} is not positive for bottom {shape}")
        # torch's floor / ceil output sizes for the same windows (torch's ceil mode clips always)
        floor_out = [cm.pooled_size(size[i], k[i], pd[i], s[i], False, False) for i in range(2)]
        ceil_out = [cm.pooled_size(size[i], k[i], pd[i], s[i], True, True) for i in range(2)]
        self.fast, self.ceil_mode = False, False
        if all(pd[i] <= k[i] // 2 for i in range(2)):
            if all(floor_out[i] >= self.out[i] for i in range(2)):
                self.fast = floor_out[0] > 0 and floor_out[1] > 0
            elif all(ceil_out[i] >= self.out[i] for i in range(2)):
                self.fast, self.ceil_mode = True, True
        # explicit padding: before = pad, after = up to the last window's end (negative crops)
        self.pads = []
        for i in (1, 0):
            self.pads += [pd[i], (self.out[i] - 1) * s[i] + k[i] - size[i] - pd[i]]
        nonempty = [cm.pool_window_nonempty(size[i], k[i], pd[i], s[i], self.out[i]) for i in range(2)]
        mask = nonempty[0][:, None] & nonempty[1][None, :]
        self.register_buffer("nonempty", mask, persistent=False)
        self.all_nonempty = bool(mask.all())
        div = [cm.ave_pool_divisor(size[i], k[i], pd[i], s[i], self.out[i]) for i in range(2)]
        self.register_buffer("divisor", (div[0][:, None] * div[1][None, :]).float(), persistent=False)
        self.top_shapes = [shape[:2] + self.out] * len(lp.top)

    def _crop(self, y, x=None):
        """Caffe's output window of torch's (possibly larger) ceil-mode output, in the layout of the
        bottom x: channels-last stays channels-last (the fused inference convolutions produce it),
        anything else becomes NCHW-contiguous."""
        y = y[..., :self.out[0], :self.out[1]]
        cl = x is not None and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return y.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)

    @staticmethod
    def _cl(x):
        """x in the layout pooling runs in: kernels.pool_plan's (channels-last on the CPU), else as is."""
        fast = kernels.pool_plan(x)
        return fast.layout(x) if fast is not None else x

    def forward(self, x):
        if self.pool == _PP.MAX:
            return self._max(x)
        if self.pool == _PP.AVE:
            return [self._ave(x)]
        if self.phase == "TRAIN":
            return [self._stochastic_train(x)]
        s, s2 = self._window_sum(x), self._window_sum(x * x)
        return [torch.where(s > 0, s2 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))]

    def _max(self, x):
        want_mask = len(self.lp.top) == 2
        fast = kernels.pool_plan(x) if self.fast and x.requires_grad and torch.is_grad_enabled() else None
        if fast is not None:
            y, idx = fast.max_autograd(x, self.kernel, self.stride, self.pad, self.ceil_mode, self.out)
        elif self.fast:
            r = F.max_pool2d(self._cl(x), self.kernel, self.stride, self.pad, ceil_mode=self.ceil_mode,
                             return_indices=want_mask)
            y, idx = (self._crop(r[0], x), self._crop(r[1], x)) if want_mask else (self._crop(r, x), None)
        else:
            xp = F.pad(x, self.pads, value=float("-inf"))
            r = F.max_pool2d(self._cl(xp), self.kernel, self.stride, return_indices=want_mask)
            y, idx = (r[0].contiguous(), r[1].contiguous()) if want_mask else (r.contiguous(), None)
            if want_mask:   # padded-plane index -> Caffe's h * W + w
                wp, W = xp.shape[3], x.shape[3]
                idx = (idx // wp - self.pad[0]) * W + (idx % wp - self.pad[1])
        if not self.all_nonempty:
            y = torch.where(self.nonempty, y, torch.full_like(y, cm.NEG_FLT_MAX))
            if want_mask:
                idx = torch.where(self.nonempty, idx, torch.full_like(idx, -1))
        return [y, idx.to(x.dtype)] if want_mask else [y]

    def _window_sum(self, x):
        """Sum of each window's in-image cells."""
        if self.fast:
            return self._crop(F.avg_pool2d(self._cl(x), self.kernel, self.stride, self.pad,
                                           ceil_mode=self.ceil_mode, divisor_override=1), x)
        xp = self._cl(F.pad(x, self.pads))
        return F.avg_pool2d(xp, self.kernel, self.stride, divisor_override=1).contiguous()

    def _ave(self, x):
        if self.fast:   # torch's count_include_pad divisor is Caffe's for the same windows
            return self._crop(F.avg_pool2d(self._cl(x), self.kernel, self.stride, self.pad,
                                           ceil_mode=self.ceil_mode, count_include_pad=True), x)
        return self._window_sum(x) / self.divisor.to(x.dtype)

    def _stochastic_train(self, x):
        """Caffe's StoPoolForwardTrain: u ~ U[0,1) per output, pick the first cell (row-major) whose
        running sum reaches u * window sum."""
        N, C = x.shape[:2]
        cols = F.unfold(F.pad(x, self.pads), self.kernel, stride=self.stride)
        cols = cols.reshape(N, C, self.kernel[0] * self.kernel[1], -1)
        csum = cols.detach().cumsum(2)
        thres = torch.rand(csum[:, :, :1].shape, dtype=x.dtype, device=x.device) * csum[:, :, -1:]
        pick = (csum >= thres).to(torch.uint8).argmax(2, keepdim=True)
        return cols.gather(2, pick).reshape((N, C) + self.out)


@register("SPP")
class SPP(Layer):
    """Spatial pyramid pooling (spp_layer.cpp): level l pools into 2^l x 2^l bins (kernel, stride, pad
    from caffe_math.spp_level_geometry, Caffe pooling rules); one level gives the pooled blob, more
    levels are flattened per sample and concatenated in level order."""
    exact_bottoms = 1
    exact_tops = 1

    def setup(self, p):
        lp = self.lp
        shape = self.bottom_shapes[0]
        if len(shape) != 4:
            raise self.error(f"bottom must have 4 axes (num, channels, height, width), got {shape}")
        if p.pyramid_height < 1:
            raise self.error("spp_param.pyramid_height must be >= 1")
        self.levels = torch.nn.ModuleList()
        for level in range(p.pyramid_height):
            k, s, pd = cm.spp_level_geometry(shape[2], shape[3], level)
            sub = caffe_pb2.LayerParameter(name=f"{lp.name}/level{level}", type="Pooling",
                                           bottom=list(lp.bottom), top=list(lp.top))
            pp = sub.pooling_param
            pp.pool = p.pool
            pp.kernel_h, pp.kernel_w, pp.stride_h, pp.stride_w, pp.pad_h, pp.pad_w = k + s + pd
            try:
                self.levels.append(Pooling(sub, [shape], self.phase))
            except NetError as e:
                raise self.error(f"pyramid level {level} of a {shape[2]}x{shape[3]} bottom: {e}") from None
        if p.pyramid_height == 1:
            self.top_shapes = [self.levels[0].top_shapes[0]]
        else:
            flat = sum(shape[1] * m.out[0] * m.out[1] for m in self.levels)
            self.top_shapes = [(shape[0], flat)]

    def forward(self, x):
        if len(self.levels) == 1:
            return self.levels[0](x)
        return [torch.cat([m(x)[0].reshape(x.shape[0], -1) for m in self.levels], 1)]
