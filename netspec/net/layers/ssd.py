"""SSD fork layers (github.com/weiliu89/caffe, branch ssd; src/caffe/layers/<name>_layer.cpp): Normalize,
Permute and PriorBox. DetectionOutput lives in ssd_detection.py. Their parameters are the SSD fork's
fields (protos/forkschema/ssd.proto), handed to ``setup(p)`` by the base class (``fork_param``).
Flatten, Reshape, Concat and Softmax in SSD nets are BVLC's layers.

Backward: Normalize and Permute through autograd (the mathematical gradient, as normalize_layer.cpp
and permute_layer.cpp compute it); PriorBox has no gradient (its top depends only on shapes).
"""
import numpy as np
import torch

from recaffe.protos import caffe_pb2
from .base import Layer
from .precision import fp32
from .registry import register


@register("Normalize")
class Normalize(Layer):
    """L2 normalization with a learned scale (normalize_layer.cpp, ParseNet): per sample, x divided by
    sqrt(sum x^2 + eps) over C*H*W (across_spatial) or over the channels at each position, then times
    scale[0] (channel_shared) or scale[c]. One blob: the scale, shape (1,) or (C,), filled by
    scale_filler (default constant 1)."""
    exact_bottoms = 1
    exact_tops = 1

    fork_param = "norm_param"

    def setup(self, p):
        shape = self.bottom_shapes[0]
        if len(shape) < 2:
            raise self.error(f"needs a bottom with at least 2 axes (N, C, ...), got shape {shape}")
        self.across_spatial, self.channel_shared, self.eps = p.across_spatial, p.channel_shared, float(p.eps)
        filler = p.scale_filler if p.HasField("scale_filler") else caffe_pb2.FillerParameter(type="constant",
                                                                                             value=1.0)
        self.add_blob((1,) if self.channel_shared else (shape[1],), filler)
        self.top_shapes = [shape]

    @fp32   # an L2 norm: float32 under autocast (layers/precision.py), as LRN and MVN
    def forward(self, x):
        sq = x * x
        if self.across_spatial:
            norm = torch.sqrt(sq.flatten(1).sum(1) + self.eps).view((-1,) + (1,) * (x.dim() - 1))
        else:
            norm = torch.sqrt(sq.sum(1, keepdim=True) + self.eps)
        scale = self.blobs[0]
        if not self.channel_shared:
            scale = scale.view((1, -1) + (1,) * (x.dim() - 2))
        return [x / norm * scale]


@register("Permute")
class Permute(Layer):
    """Reorder the axes (permute_layer.cpp): ``order`` names the new axes; axes it leaves out follow
    in their original order. A repeated or out-of-range axis is an error."""
    exact_bottoms = 1
    exact_tops = 1

    fork_param = "permute_param"

    def setup(self, p):
        shape = self.bottom_shapes[0]
        order = []
        for a in p.order:
            if a >= len(shape):
                raise self.error(f"order {a} is out of range for a {len(shape)}-axis bottom")
            if a in order:
                raise self.error(f"order {a} is repeated; each axis may appear once")
            order.append(int(a))
        order += [a for a in range(len(shape)) if a not in order]
        self.order = tuple(order)
        self.top_shapes = [tuple(shape[a] for a in order)]

    def forward(self, x):
        if self.order == tuple(range(x.dim())):
            return [x]
        return [x.permute(self.order)]


def prior_boxes(layer_hw, img_hw, step_hw, offset, min_sizes, max_sizes, ratios, clip, variance):
    """PriorBox's top (prior_box_layer.cpp, Forward_cpu) as a float32 array (1, 2, H*W*num_priors*4).

    For each cell (h, w), centre ((w + offset) * step_w, (h + offset) * step_h) in float; for each
    min_size (truncated to an int, as the fork stores it in ``int min_size_``): the square min_size box,
    then the sqrt(min_size * max_size) box when max sizes are given (ints again), then one box
    min_size*sqrt(r) x min_size/sqrt(r) per aspect ratio r != 1; corners divided by the image size in
    double, stored as float; clip clamps to [0, 1]. The second channel holds the variances."""
    lh, lw = layer_hw
    ih, iw = img_hw
    sh, sw = np.float32(step_hw[0]), np.float32(step_hw[1])
    cx = (np.arange(lw, dtype=np.float32) + np.float32(offset)) * sw        # float, as the fork
    cy = (np.arange(lh, dtype=np.float32) + np.float32(offset)) * sh
    sizes = []                                                               # (box_w, box_h) per prior
    for s, mn in enumerate(min_sizes):
        mn = int(mn)
        sizes.append((np.float32(mn), np.float32(mn)))
        if max_sizes:
            side = np.float32(np.sqrt(float(mn * int(max_sizes[s]))))
            sizes.append((side, side))
        for r in ratios:
            if abs(r - 1.0) < 1e-6:
                continue
            root = np.sqrt(np.float32(r))
            sizes.append((np.float32(mn * root), np.float32(mn / root)))
    bw = np.array([w for w, _ in sizes], np.float64) / 2.0
    bh = np.array([h for _, h in sizes], np.float64) / 2.0
    x = cx.astype(np.float64)[None, :, None]
    y = cy.astype(np.float64)[:, None, None]
    boxes = np.stack(np.broadcast_arrays((x - bw) / iw, (y - bh) / ih, (x + bw) / iw, (y + bh) / ih), -1)
    boxes = boxes.astype(np.float32).reshape(-1)
    if clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    var = np.empty_like(boxes)
    var.reshape(-1, 4)[:] = np.asarray(variance if len(variance) == 4 else [variance[0]] * 4, np.float32)
    return np.stack([boxes, var])[None], len(sizes)


@register("PriorBox")
class PriorBox(Layer):
    """Default boxes of one SSD feature map (prior_box_layer.cpp). Bottoms: the feature map (its H, W)
    and the image (its H, W, unless img_size / img_h+img_w are given). Aspect ratios: 1 first, then
    each given ratio not already present (within 1e-6) and, with flip, its inverse. variance: none
    (0.1), one, or four values. step / step_h+step_w default to image size / feature size."""
    exact_bottoms = 2
    exact_tops = 1

    fork_param = "prior_box_param"

    def setup(self, p):
        feat, img = self.bottom_shapes
        if len(feat) != 4 or len(img) != 4:
            raise self.error(f"needs 4-axis bottoms (N, C, H, W), got {feat} and {img}")
        mins, maxs = list(p.min_size), list(p.max_size)
        if not mins or any(m <= 0 for m in mins):
            raise self.error(f"min_size must be given and positive, got {mins}")
        if maxs and (len(maxs) != len(mins) or any(b <= a for a, b in zip(mins, maxs))):
            raise self.error(f"max_size needs one value per min_size ({mins}), each greater, got {maxs}")
        ratios = [1.0]
        for r in p.aspect_ratio:
            if any(abs(r - q) < 1e-6 for q in ratios):
                continue
            ratios.append(float(r))
            if p.flip:
                ratios.append(1.0 / float(r))
        variance = list(p.variance) or [0.1]
        if len(variance) not in (1, 4) or any(v <= 0 for v in variance):
            raise self.error(f"variance takes 1 or 4 positive values, got {variance}")
        img_hw = self._pair(p, "img_size", "img_h", "img_w", (img[2], img[3]), int)
        step_hw = self._pair(p, "step", "step_h", "step_w", None, float)
        if step_hw is None:
            step_hw = (np.float32(img_hw[0]) / np.float32(feat[2]), np.float32(img_hw[1]) / np.float32(feat[3]))
        top, self.num_priors = prior_boxes(feat[2:], img_hw, step_hw, p.offset, mins, maxs, ratios, p.clip,
                                           variance)
        self.register_buffer("priors", torch.from_numpy(top), persistent=False)
        self.top_shapes = [tuple(top.shape)]

    def _pair(self, p, one, h, w, default, kind):
        """img_size or img_h+img_w (step or step_h+step_w): either form, not both; 0 means unset."""
        if p.HasField(one):
            if p.HasField(h) or p.HasField(w):
                raise self.error(f"give either {one} or {h}/{w}, not both")
            v = kind(getattr(p, one))
            return None if v == 0 and default is None else (v, v) if v else default
        if p.HasField(h) or p.HasField(w):
            vh, vw = kind(getattr(p, h)), kind(getattr(p, w))
            if vh <= 0 or vw <= 0:
                raise self.error(f"{h} and {w} must both be given and positive, got {vh} and {vw}")
            return vh, vw
        return default

    def forward(self, feat, img):
        return [self.priors.to(feat.dtype)]
