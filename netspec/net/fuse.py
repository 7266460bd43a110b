"""The fusion plan: which steps of a Net's schedule run as one fused call, decided once at build time
(``FusionPlan(steps)``) and consulted by ``Net.forward`` at every step (``plan.call``).

* BatchNorm (global statistics) + Scale, in place on one blob (so the normalised blob is never
  observable): Caffe splits torch's affine batch norm into two layers (batch_norm_layer.cpp normalises
  with the stored statistics, scale_layer.cpp applies gamma and beta);
  ``F.batch_norm(x, mean*f, var*f, gamma, beta, eps)`` computes the same values and gradients (x,
  gamma, beta; the statistics get none, as in Caffe) in one pass instead of two. Any device, under
  autograd too; ``net.fuse_bn_scale = False`` runs the layers (their forward hooks then fire).
* Inference chains: Convolution [+ BatchNorm + Scale] [+ ReLU], InnerProduct [+ ReLU], every step
  after the first in place on its top. When no gradient is wanted (torch.no_grad(), a grad-free step,
  or frozen weights on an input that needs none) and the kernels switch allows
  (netspec.net.kernels: CPU float32, not traced, not autocast, ``net.fast_inference``), the chain
  is one oneDNN call (kernels.fused): the BatchNorm/Scale affine folded into the weights, the ReLU
  fused. Every blob the chain writes is the same in-place blob, so net.blobs holds what the unfused
  layers would leave there (Caffe's values to float32 rounding).
* In-place ReLU under autograd: Caffe runs an in-place ReLU on the blob itself. Under autograd the
  net may too (torch.relu_, one memory pass less) when the blob was made by the step just before in
  the same forward call, by an op whose backward does not read its own output (no saved tensor
  changes), and nobody else holds the pre-ReLU tensor: no forward hooks (the pycaffe facade's diffs,
  user hooks) and no retained blob grads. Gradients are bit-identical to the out-of-place ReLU's.

Weights packed for a chain and the effective BatchNorm statistics are cached here, keyed on the
blobs' version counters and storage, so in-place weight changes are seen; no cache while a graph is
captured (kernels.tracing()).
"""
import contextlib

import torch
import torch.nn.functional as F

from . import kernels
from .layers import caffe_math as cm
from .layers.linear import InnerProduct, Scale
from .layers.neuron import ReLU
from .layers.normalization import BatchNorm
from .layers.vision import Convolution

_OUTPUT_FREE_BACKWARD = frozenset(("ConvolutionBackward0", "MkldnnConvolutionBackward0", "AddmmBackward0",
                                   "_InnerProductFnBackward", "NativeBatchNormBackward0", "AddBackward0",
                                   "_ConvMMBackward"))


class FusionPlan:
    """``bn_scale``: BatchNorm steps k fused with the Scale step k+1; ``chains``: {k: n} Convolution /
    InnerProduct steps k whose fused inference call covers steps k..k+n-1; ``inplace_relus``: ReLU
    steps that may run in place under autograd."""

    def __init__(self, steps):
        self.bn_scale = {k for k in range(len(steps) - 1) if _bn_scale_pair(steps[k], steps[k + 1])}
        self.chains = {}
        for k, s in enumerate(steps):
            n = _chain_length(steps, k, self.bn_scale)
            if n:
                self.chains[k] = n
        self.inplace_relus = {k for k, s in enumerate(steps) if k > 0 and _relu(s) and s.tops == s.bottoms
                              and not s.loss and not s.detach and s.bottoms[0] in steps[k - 1].tops}
        self._starts = set(self.chains) | self.bn_scale
        self._cache = {}

    def __repr__(self):
        return (f"FusionPlan(bn_scale={sorted(self.bn_scale)}, chains={dict(sorted(self.chains.items()))}, "
                f"inplace_relus={sorted(self.inplace_relus)})")

    def call(self, net, k, last, blobs):
        """Run the fused call that starts at step k, if the plan has one ending by step ``last`` that
        may run now: (number of steps covered, tops of its last step), else None."""
        if k not in self._starts or not net.fuse_bn_scale:
            return None
        s = net.steps[k]
        n = self.chains.get(k)
        if n and k + n - 1 <= last and s.bottoms[0] in blobs and chain_ready(net, k, blobs[s.bottoms[0]]):
            return n, [run_chain(net, k, blobs[s.bottoms[0]])]
        if k in self.bn_scale and k < last:
            with torch.no_grad() if s.grad_free else contextlib.nullcontext():
                return 2, [self.bn_scale_forward(k, s.layer, net.steps[k + 1].layer, blobs[s.bottoms[0]])]
        return None

    def bn_scale_forward(self, k, bn, scale, x):
        """The fused forward of the BatchNorm step k and its Scale. The effective statistics
        (blob * 1/factor) are cached until one of the BatchNorm blobs changes."""
        mean, var, factor = bn.blobs
        if kernels.tracing():
            f = cm.batchnorm_scale_factor(factor.detach())
            stats = (mean.detach() * f, var.detach() * f)
        else:
            key = ("bn", k, tuple((t._version, t.data_ptr()) for t in (mean, var, factor)))
            stats = self._cache.get(("bn", k))
            if stats is None or stats[0] != key:
                with torch.no_grad():
                    f = cm.batchnorm_scale_factor(factor.detach())
                    stats = self._cache[("bn", k)] = (key, mean.detach() * f, var.detach() * f)
            stats = stats[1:]
        if x.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(x.device.type):
            x = x.float()   # BatchNorm in float32 under autocast (as layers/precision.py's @fp32)
        return F.batch_norm(x, stats[0], stats[1], scale.blobs[0], scale.blobs[1], training=False, eps=bn.eps)

    def packed_conv(self, k, conv, bn, sc, x):
        """(weights, bias) of the chain at step k packed for oneDNN (kernels.pack_conv), cached per
        input shape until a blob of the chain changes."""
        sources = list(conv.blobs) + (list(bn.blobs) + list(sc.blobs) if bn is not None else [])
        key = tuple((t._version, t.data_ptr()) for t in sources)
        slot = ("conv", k, tuple(x.shape))
        cached = self._cache.get(slot)
        if cached is None or cached[0] != key:
            g = conv.geo
            b = conv.blobs[1] if conv.bias_term else None
            packed = kernels.pack_conv(conv.blobs[0], b, g.pad, g.stride, g.dilation, conv.group, x.shape,
                                       bn=list(bn.blobs) if bn is not None else None,
                                       eps=bn.eps if bn is not None else 0.0,
                                       scale=list(sc.blobs) if sc is not None else None)
            cached = self._cache[slot] = (key,) + packed
        return cached[1:]

    def relu_in_place(self, net, k, bottoms):
        """Whether ReLU step k may run as torch.relu_ on its bottom now (the step before ran in the
        same forward call)."""
        if k not in self.inplace_relus or kernels.tracing():
            return False
        x, steps = bottoms[0], net.steps
        return (x.requires_grad and torch.is_grad_enabled() and not net.retain_blob_grads
                and type(x.grad_fn).__name__ in _OUTPUT_FREE_BACKWARD
                and not steps[k].layer._forward_hooks and not steps[k - 1].layer._forward_hooks
                and not steps[k].layer._forward_pre_hooks)


def _relu(s):
    return _is(s, ReLU) and s.layer.negative_slope == 0.0 and len(s.bottoms) == 1


def _inplace_on(step, name):
    return step.bottoms == [name] and step.tops == [name] and not step.loss and not step.detach


def _bn_scale_pair(bn, sc):
    """A BatchNorm with global statistics feeding a Scale (axis 1, per-channel, with bias) in place."""
    if not _is(bn, BatchNorm) or not _is(sc, Scale) or not getattr(bn.layer, "use_global", False):
        return False
    shape = bn.layer.bottom_shapes[0] if bn.layer.bottom_shapes else ()
    return (len(bn.layer.blobs) == 3 and len(bn.tops) == 1 and not bn.loss and not bn.detach
            and sc.bottoms == bn.tops and sc.tops == sc.bottoms and not sc.loss and not sc.detach
            and len(sc.layer.blobs) == 2 and getattr(sc.layer, "axis", None) == 1
            and getattr(sc.layer, "bias_axis", None) == 1 and len(shape) >= 2
            and tuple(sc.layer.blobs[0].shape) == (shape[1],)
            and tuple(sc.layer.blobs[1].shape) == tuple(sc.layer.blobs[0].shape))


def _chain_length(steps, k, bn_scale):
    """Steps the fused inference call starting at step k covers (>= 1), or 0 when step k starts none."""
    s = steps[k]
    lay = s.layer
    if len(s.bottoms) != 1 or len(s.tops) != 1 or s.loss or s.detach:
        return 0
    if _is(s, Convolution):
        g = lay.geo
        if g.n_sp != 2 or g.axis != 1 or len(g.outer) != 1 or any(lay.extra):
            return 0
    elif not _is(s, InnerProduct) or lay.transpose:
        return 0
    name, j = s.tops[0], k + 1
    if (_is(s, Convolution) and j + 1 < len(steps) and j in bn_scale
            and _inplace_on(steps[j], name) and _inplace_on(steps[j + 1], name)):
        j += 2
    if j < len(steps) and _relu(steps[j]) and _inplace_on(steps[j], name):
        j += 1
    return j - k


def chain_ready(net, k, x):
    """Whether the chain at step k may run as its fused inference call on bottom x now: the kernels
    switch allows it, x has the shape the layer is set up for, and no gradient is wanted."""
    s = net.steps[k]
    if s.key is not None and s.key[0] != tuple(x.shape):
        return False
    if _is(s, InnerProduct):
        if kernels.linear_chain_plan(x, s.layer.blobs[0]) is None:
            return False
    elif kernels.conv_chain_plan(x) is None:
        return False
    if not torch.is_grad_enabled() or s.grad_free:
        return True
    if x.requires_grad:
        return False
    n = net.fusion.chains[k]
    return not any(p.requires_grad for i in range(k, k + n) for p in net.steps[i].layer.blobs)


def run_chain(net, k, x):
    """The fused forward of the chain starting at step k (after chain_ready)."""
    steps, plan = net.steps, net.fusion
    s, n = steps[k], plan.chains[k]
    lay = s.layer
    attr = "relu" if _is(steps[k + n - 1], ReLU) else "none"
    with torch.no_grad():
        if _is(s, InnerProduct):   # the plain weight: no cached copy of big fc weights
            x2, w = x.reshape(-1, lay.K), lay.blobs[0].detach()
            b = lay.blobs[1].detach() if lay.bias_term else None
            return kernels.linear_chain_plan(x2, w)(x2, w, b, attr).reshape(lay.top_shapes[0])
        bn = sc = None
        if n >= 3 and _is(steps[k + 1], BatchNorm):
            bn, sc = steps[k + 1].layer, steps[k + 2].layer
        w, b = plan.packed_conv(k, lay, bn, sc, x)
        g = lay.geo
        return kernels.conv_chain_plan(x)(x, w, b, g.pad, g.stride, g.dilation, lay.group, attr)


def _is(step, cls):
    """Whether the step's layer is exactly the built-in ``cls`` (not a subclass, or a layer registered
    under the same type string with replace=True, whose forward may differ)."""
    return type(step.layer) is cls
