"""Normalization layers: BatchNorm and MVN (src/caffe/layers/batch_norm_layer.cpp, mvn_layer.cpp).

BatchNorm has no affine part (Caffe pairs it with a Scale layer). Its three blobs are statistics,
not learnable weights: Caffe appends ``param { lr_mult: 0 }`` for every blob without a ParamSpec and
refuses a non-zero lr_mult, and so does this layer (on ``self.lp``, which the net keeps, so the
solver and Net::ToProto see the same ParamSpecs as in Caffe). Their values never get a gradient.
"""
import torch

from . import caffe_math as cm
from .base import Layer
from .precision import fp32
from .registry import register


@register("BatchNorm")
class BatchNorm(Layer):
    """Per-channel (axis 1) normalisation.

    use_global_stats (default: true in TEST, false in TRAIN): y = (x - mean)/sqrt(var + eps) with
    mean = blob0 * f, var = blob1 * f, f = caffe_math.batchnorm_scale_factor(blob2).
    Otherwise batch statistics (biased variance) are used, gradient through them (torch's fused
    batch_norm: Caffe's dx = (dy - mean(dy) - mean(dy*y)*y)/sqrt(var + eps)), and every forward
    updates the blobs: blob2 = lambda*blob2 + 1, blob0 = lambda*blob0 + mean,
    blob1 = lambda*blob1 + m/(m-1)*var (lambda = moving_average_fraction, m values per channel)."""
    exact_bottoms = 1
    exact_tops = 1
    learnable_blobs = False

    @classmethod
    def blob_count(cls, lp):
        return 3

    def setup(self, p):
        lp, phase = self.lp, self.phase
        shape = self.bottom_shapes[0]
        if len(shape) < 2:
            raise self.error(f"bottom must have at least 2 axes (num, channels, ...), got {shape}")
        self.use_global = p.use_global_stats if p.HasField("use_global_stats") else phase == "TEST"
        self.fraction, self.eps = p.moving_average_fraction, p.eps
        if not self.eps >= 0 or self.eps == float("inf"):   # Caffe would compute sqrt(var + eps) of NaNs
            raise self.error(f"batch_norm_param.eps must be a finite number >= 0, got {self.eps}")
        self.channels = shape[1]
        for size in ((self.channels,), (self.channels,), (1,)):
            self.add_blob(size).requires_grad_(False)
        for i in range(3):
            if i == len(lp.param):
                lp.param.add(lr_mult=0.0)
            elif lp.param[i].lr_mult != 0:
                raise self.error(f"param {i} has lr_mult {lp.param[i].lr_mult}: BatchNorm statistics cannot be "
                                 f"learned (lr_mult must be 0)")
        self.top_shapes = [shape]

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x):
        b0, b1, b2 = self.blobs
        if self.use_global:
            f = cm.batchnorm_scale_factor(b2.detach())
            return [torch.nn.functional.batch_norm(x, b0.detach() * f, b1.detach() * f, training=False,
                                                   eps=self.eps)]
        m = x.numel() // self.channels
        if m > 1:
            # torch's fused batch norm; with momentum 1 its running buffers receive exactly the batch
            # mean and the unbiased (m/(m-1)) batch variance that Caffe accumulates
            mean, var = torch.zeros_like(b0), torch.ones_like(b1)
            y = torch.nn.functional.batch_norm(x, mean, var, training=True, momentum=1.0, eps=self.eps)
        else:   # one value per channel: Caffe's factor is 1 and y = 0 (torch refuses m == 1)
            dims = [0] + list(range(2, x.dim()))
            mu = x.mean(dims, keepdim=True)
            xc = x - mu
            v = (xc * xc).mean(dims, keepdim=True)
            y = xc / torch.sqrt(v + self.eps)
            mean, var = mu.detach().reshape(-1), v.detach().reshape(-1) * cm.batchnorm_variance_correction(m)
        with torch.no_grad():
            b2.mul_(self.fraction).add_(1.0)
            b0.mul_(self.fraction).add_(mean)
            b1.mul_(self.fraction).add_(var)
        return [y]


@register("MVN")
class MVN(Layer):
    """Mean-variance normalisation (mvn_layer.cpp) over each (n, c) plane, or each sample with
    across_channels: y = x - mean, then / (sqrt(mean((x - mean)^2)) + eps) if normalize_variance
    (eps added after the square root); the top is always 4-D (legacy shape). Backward is Caffe's
    formula, whose variance term differs from the exact derivative by sigma/(sigma+eps) (_caffe_std)."""
    exact_bottoms = 1
    exact_tops = 1

    def setup(self, p):
        shape = self.bottom_shapes[0]
        if len(shape) > 4:
            raise self.error(f"bottom must have at most 4 axes (legacy num/channels/height/width), got {shape}")
        self.normalize_variance, self.eps = p.normalize_variance, p.eps
        # Caffe's legacy accessors: num = shape[0], channels = shape[1] (1 when absent)
        num = shape[0] if shape else 1
        if not p.across_channels and len(shape) > 1:
            num *= shape[1]
        self.groups = num
        # Reshape uses the legacy accessors too: the top is 4-D, missing axes read as 1
        self.top_shapes = [tuple(shape) + (1,) * (4 - len(shape))]

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x):
        g = x.reshape(self.groups, -1)
        xc = g - g.mean(1, keepdim=True)
        if self.normalize_variance:
            xc = xc / self._caffe_std(xc)
        return [xc.reshape(self.top_shapes[0])]

    def _caffe_std(self, xc):
        """sqrt(var) + eps whose derivative is d(var)/(2*(sqrt(var) + eps)): with it autograd gives
        mvn_layer.cpp's Backward_cpu, dx = (dy - mean(dy) - y*mean(y*dy)) / (sqrt(var) + eps)."""
        var = (xc * xc).mean(1, keepdim=True)
        s = var.detach().sqrt() + self.eps
        return s + (var - var.detach()) / (2 * s)
