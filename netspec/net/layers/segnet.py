"""SegNet fork layers (github.com/alexgkendall/caffe-segnet): BN (bn_layer.cpp) and Upsample
(upsample_layer.cpp), with the fork's bn_param / upsample_param (protos/forkschema/segnet.proto).
"""
import torch

from recaffe.protos import caffe_pb2
from recaffe.protos.forkschema import segnet_pb2
from .base import Layer
from .precision import fp32
from .registry import register

#: bn_layer.cpp: var_eps_
BN_VAR_EPS = 1e-9


def bn_batch_stats(x):
    """Per-channel batch mean and variance as bn_layer.cpp computes them (LEARN): E[x] over N, H, W
    (spatial means first, then their mean over N) and E[x^2] - E[x]^2, the biased variance."""
    mean = x.mean((2, 3)).mean(0)
    var = (x * x).mean((2, 3)).mean(0) - mean * mean
    return mean, var


@register("BN")
class BN(Layer):
    """SegNet's batch normalization: two blobs, scale and shift (1, C, 1, 1), from scale_filler /
    shift_filler. LEARN: y = (x - mean) / sqrt(var + 1e-9) * scale + shift with the batch's own
    statistics (in every phase; SegNet computes inference statistics offline and folds them into scale
    and shift, Scripts/compute_bn_statistics.py). INFERENCE: y = scale * x + shift. Optional tops 2
    and 3: the batch mean and variance (1, C, 1, 1), LEARN only, without gradient (the fork ignores
    their diffs). Backward through autograd: the fork's exact batch-norm gradient."""
    exact_bottoms = 1
    min_tops = 1
    max_tops = 3

    fork_param = "bn_param"

    def setup(self, p):
        shape = self.bottom_shapes[0]
        if len(shape) != 4:
            raise self.error(f"needs a 4-axis bottom (N, C, H, W), got {shape}")
        self.learn = p.bn_mode == segnet_pb2.BNParameter.LEARN
        if len(self.lp.top) > 1 and not self.learn:
            raise self.error("the batch mean and variance tops exist in bn_mode LEARN only")
        c = shape[1]
        constant = caffe_pb2.FillerParameter(type="constant")
        self.add_blob((1, c, 1, 1), p.scale_filler if p.HasField("scale_filler") else constant)
        self.add_blob((1, c, 1, 1), p.shift_filler if p.HasField("shift_filler") else constant)
        self.top_shapes = [shape] + [(1, c, 1, 1)] * (len(self.lp.top) - 1)

    @fp32   # batch statistics: float32 under autocast (layers/precision.py), as BatchNorm
    def forward(self, x):
        scale, shift = self.blobs
        if not self.learn:
            return [x * scale + shift]
        mean, var = bn_batch_stats(x)
        y = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var + BN_VAR_EPS).view(1, -1, 1, 1) * scale + shift
        stats = [mean.detach().view(1, -1, 1, 1), var.detach().view(1, -1, 1, 1)]
        return [y] + stats[:len(self.lp.top) - 1]


class _Unpool(torch.autograd.Function):
    """upsample_layer.cpp: top[mask[i]] = bottom[i] per (n, c) plane, in bottom order (a later cell
    overwrites an earlier one with the same mask value); backward bottom_diff[i] = top_diff[mask[i]]."""

    @staticmethod
    def forward(ctx, x, idx, out_hw):
        n, c = x.shape[:2]
        flat_x = x.reshape(n * c, -1)
        flat_i = idx.reshape(n * c, -1)
        size = out_hw[0] * out_hw[1]
        # the last writer of each top cell: the largest bottom position holding that mask value
        pos = torch.arange(flat_x.shape[1], device=x.device).expand_as(flat_i)
        last = torch.full((n * c, size), -1, dtype=torch.int64, device=x.device)
        last.scatter_reduce_(1, flat_i, pos, reduce="amax")
        top = torch.where(last >= 0, flat_x.gather(1, last.clamp(min=0)), flat_x.new_zeros(()))
        ctx.save_for_backward(flat_i)
        ctx.shape = x.shape
        return top.view(n, c, *out_hw)

    @staticmethod
    def backward(ctx, gy):
        flat_i, = ctx.saved_tensors
        g = gy.reshape(flat_i.shape[0], -1).gather(1, flat_i)
        return g.view(ctx.shape), None, None


@register("Upsample")
class Upsample(Layer):
    """Max-unpooling (SegNet): bottom 0 the pooled values, bottom 1 the mask (argmax indices h*W + w) of
    the Pooling layer that made them, same shape. Top size: upsample_h x upsample_w when both are
    given, else bottom size * scale (scale, or scale_h and scale_w, > 1) minus pad_out_h/pad_out_w
    (scale 2 only). Cells no mask value points at are 0."""
    exact_bottoms = 2
    exact_tops = 1

    fork_param = "upsample_param"

    def setup(self, p):
        x, mask = self.bottom_shapes
        if len(x) != 4 or x != mask:
            raise self.error(f"needs 4-axis data and mask bottoms of one shape, got {x} and {mask}")
        has = p.HasField
        if not ((has("upsample_h") and has("upsample_w")) or (not has("scale") and has("scale_h") and has("scale_w"))
                or (not has("scale_h") and not has("scale_w"))):
            raise self.error("upsample_h and upsample_w are required, else scale or scale_h and scale_w")
        if has("upsample_h") and has("upsample_w"):
            out = (int(p.upsample_h), int(p.upsample_w))
            if min(out) <= 1:
                raise self.error(f"upsample_h and upsample_w must be > 1, got {out}")
        else:
            sh, sw = (p.scale_h, p.scale_w) if has("scale_h") else (p.scale, p.scale)
            if sh <= 1 or sw <= 1:
                raise self.error(f"scale must be > 1, got {sh} x {sw}")
            if (p.pad_out_h and sh != 2) or (p.pad_out_w and sw != 2):
                raise self.error("pad_out_h / pad_out_w need scale 2 on that axis")
            out = (x[2] * sh - int(p.pad_out_h), x[3] * sw - int(p.pad_out_w))
        self.out_hw = out
        self.top_shapes = [x[:2] + out]

    def forward(self, x, mask):
        idx = mask.detach().to(torch.int64)     # static_cast<int> of the float mask
        size = self.out_hw[0] * self.out_hw[1]
        if idx.numel() and (int(idx.max()) >= size or int(idx.min()) < 0):
            raise self.error(f"mask index {int(idx.max()) if int(idx.max()) >= size else int(idx.min())} out "
                             f"of range for a {self.out_hw[0]} x {self.out_hw[1]} top; check that the scale "
                             "matches the Pooling layer that made the mask")
        return [_Unpool.apply(x, idx, self.out_hw)]
