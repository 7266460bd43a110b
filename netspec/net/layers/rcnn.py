"""Fast/Faster R-CNN fork layers (github.com/rbgirshick/caffe-fast-rcnn: roi_pooling_layer.cu/.cpp,
smooth_L1_loss_layer.cu), with the fork's roi_pooling_param / smooth_l1_loss_param
(protos/forkschema/frcnn.proto). The fork computes both backwards on the GPU only; ours are those.
"""
import torch

from .base import Layer, count
from .precision import fp32
from .registry import register


def roi_bounds(rois, spatial_scale, pooled, size):
    """Per ROI and output bin, the [start, end) input rows (or columns) of one axis, as
    roi_pooling_layer.cpp: ROI start/end = round(coordinate * spatial_scale) (float product, C round:
    halves away from zero), length max(end - start + 1, 1), bin = length / pooled (float), bin p covers
    [floor(p * bin), ceil((p + 1) * bin)) + start, clipped to [0, size]. ``rois`` (R, 2): the ROI's
    start and end coordinates on this axis."""
    v = (rois.to(torch.float32) * torch.tensor(spatial_scale, dtype=torch.float32)).to(torch.float64)
    v = (torch.sign(v) * torch.floor(v.abs() + 0.5)).to(torch.int64)
    start, end = v[:, 0], v[:, 1]
    length = torch.clamp(end - start + 1, min=1)
    bin_size = length.to(torch.float32) / torch.tensor(float(pooled), dtype=torch.float32)
    p = torch.arange(pooled, dtype=torch.float32)
    lo = torch.floor(p[None] * bin_size[:, None]).to(torch.int64) + start[:, None]
    hi = torch.ceil((p[None] + 1) * bin_size[:, None]).to(torch.int64) + start[:, None]
    return lo.clamp(0, size), hi.clamp(0, size)


class _ROIPool(torch.autograd.Function):
    """Max over each bin (first maximum in row-major order wins, empty bins give 0); backward adds
    each bin's top diff to the bottom cell it took its maximum from (ROIPoolBackward)."""

    @staticmethod
    def forward(ctx, x, rois, pooled_hw, spatial_scale):
        n, c, h, w = x.shape
        ph, pw = pooled_hw
        batch = rois[:, 0].to(torch.int64)
        if rois.shape[0] and (int(batch.min()) < 0 or int(batch.max()) >= n):
            raise ValueError(f"ROI batch index {int(batch.min())}..{int(batch.max())} outside the "
                             f"batch of {n}")
        rois = rois.cpu()           # the bin bounds are small integer work
        hs, he = roi_bounds(rois[:, [2, 4]], spatial_scale, ph, h)
        ws, we = roi_bounds(rois[:, [1, 3]], spatial_scale, pw, w)
        r = rois.shape[0]
        top = x.new_zeros((r, c, ph, pw))
        arg = torch.full((r, c, ph, pw), -1, dtype=torch.int64, device=x.device)
        hs, he, ws, we = (t.tolist() for t in (hs, he, ws, we))
        xl = x.permute(0, 2, 3, 1)                              # (N, H, W, C) view: bins reduce whole C rows
        for k in range(r):
            cols = [j for j in range(pw) if we[k][j] > ws[k][j]]
            rows = [i for i in range(ph) if he[k][i] > hs[k][i]]
            if not cols or not rows:
                continue                                        # every bin empty: 0, argmax -1
            r0, c0 = min(hs[k]), min(ws[k])
            region = xl[int(batch[k]), r0:max(he[k]), c0:max(we[k])]     # (rows, cols, C)
            # the max over each bin's columns (for every row), then over its rows; torch.max keeps
            # the first maximum, so the winner is the first in row-major order, as the fork's scan
            v1, i1 = zip(*(region[:, ws[k][j] - c0:we[k][j] - c0].max(1) for j in cols))
            v1 = torch.stack(v1, 1)                             # (rows, bins, C)
            i1 = torch.stack(i1, 1) + torch.tensor([ws[k][j] for j in cols], device=x.device)[:, None]
            for i in rows:
                val, idx = v1[hs[k][i] - r0:he[k][i] - r0].max(0)          # (bins, C)
                col = i1[hs[k][i] - r0:he[k][i] - r0].gather(0, idx[None])[0]
                top[k, :, i, cols] = val.t()
                arg[k, :, i, cols] = ((idx + hs[k][i]) * w + col).t()
        ctx.save_for_backward(batch.to(x.device), arg)
        ctx.shape = x.shape
        return top

    @staticmethod
    def backward(ctx, gtop):
        batch, arg = ctx.saved_tensors
        n, c, h, w = ctx.shape
        gx = gtop.new_zeros(n * c * h * w)
        plane = (batch.view(-1, 1, 1, 1) * c + torch.arange(c, device=arg.device).view(1, -1, 1, 1)) * (h * w)
        valid = arg >= 0
        gx.index_add_(0, (plane + arg)[valid], gtop[valid])
        return gx.view(n, c, h, w), None, None, None


@register("ROIPooling")
class ROIPooling(Layer):
    """Max pooling of each region of interest into pooled_h x pooled_w bins. Bottoms: features
    (N, C, H, W) and ROIs (R, 5) rows [batch index, x1, y1, x2, y2] in image coordinates (scaled by
    spatial_scale). Top (R, C, pooled_h, pooled_w). No gradient to the ROIs."""
    exact_bottoms = 2
    exact_tops = 1

    fork_param = "roi_pooling_param"

    def setup(self, p):
        x, rois = self.bottom_shapes
        if p.pooled_h <= 0 or p.pooled_w <= 0:
            raise self.error(f"pooled_h and pooled_w must be > 0, got {p.pooled_h} and {p.pooled_w}")
        if len(x) != 4 or count(rois, 1) != 5:
            raise self.error(f"needs features (N, C, H, W) and ROIs (R, 5), got {x} and {rois}")
        self.pooled = (int(p.pooled_h), int(p.pooled_w))
        self.spatial_scale = float(p.spatial_scale)
        self.top_shapes = [(rois[0], x[1]) + self.pooled]

    def forward(self, x, rois):
        try:
            return [_ROIPool.apply(x, rois.detach().reshape(-1, 5), self.pooled, self.spatial_scale)]
        except ValueError as e:
            raise self.error(str(e)) from None


def smooth_l1(d, sigma2):
    """smooth_L1_loss_layer.cu SmoothL1Forward: 0.5 * d^2 * sigma^2 where |d| < 1/sigma^2, else
    |d| - 0.5/sigma^2."""
    a = d.abs()
    return torch.where(a < 1.0 / sigma2, 0.5 * d * d * sigma2, a - 0.5 / sigma2)


@register("SmoothL1Loss")
class SmoothL1Loss(Layer):
    """Faster R-CNN's box regression loss. Bottoms: predictions, targets and optionally inside and
    outside weights (4 bottoms), all with the same count. loss = sum |outside * smooth_l1(inside *
    (pred - target))| / N (N: bottom 0's first dimension; the fork sums with asum). Gradient to
    predictions and targets (opposite signs) through autograd of the sum without the absolute value,
    as the fork's backward; none to the weights."""
    is_loss = True
    min_bottoms = 2
    max_bottoms = 4
    exact_tops = 1

    fork_param = "smooth_l1_loss_param"

    def setup(self, p):
        if len(self.lp.bottom) == 3:
            raise self.error("takes 2 bottoms (predictions, targets) or 4 (with inside and outside weights)")
        sigma = float(p.sigma)
        self.sigma2 = sigma * sigma
        first = count(self.bottom_shapes[0])
        for i, s in enumerate(self.bottom_shapes[1:], 1):
            if count(s) != first or s[1:] != self.bottom_shapes[0][1:]:
                raise self.error(f"bottom {i} has shape {s}; every bottom must have bottom 0's shape "
                                 f"{self.bottom_shapes[0]}")
        self.top_shapes = [()]

    @fp32   # a loss: float32 under autocast (layers/precision.py)
    def forward(self, pred, target, inside=None, outside=None):
        d = pred - target
        if inside is not None:
            d = d * inside.detach()
        err = smooth_l1(d, self.sigma2)
        if outside is not None:
            err = err * outside.detach()
        num = pred.shape[0]
        s = err.sum() / num
        return [s + (err.detach().abs().sum() / num - s.detach())]
