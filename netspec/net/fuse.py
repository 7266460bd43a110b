"""Inference-style fusion of BatchNorm (global statistics) + Scale into one torch batch_norm call.

Caffe splits torch's affine batch norm into two layers (batch_norm_layer.cpp normalises with the
stored statistics, scale_layer.cpp applies gamma and beta). When a BatchNorm that uses global
statistics feeds a Scale on the same blob, in place (so the normalised blob is never observable),
``F.batch_norm(x, mean*f, var*f, gamma, beta, eps)`` computes the same values and gradients (x, gamma,
beta; the statistics get none, as in Caffe) in one pass instead of two. The layers' own modules are
then not called (their forward hooks do not fire); set ``net.fuse_bn_scale = False`` to run them.
"""
import torch
import torch.nn.functional as F

from . import fastswitch
from .layers import caffe_math as cm
from .layers.linear import onednn_linear, onednn_linear_ok

_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def plan(net):
    """Mark the steps of ``net`` whose BatchNorm + Scale pair can run fused (step.fuse = True on the
    BatchNorm step, which then also produces the Scale step's top)."""
    steps = net._steps
    for k in range(len(steps) - 1):
        bn, sc = steps[k], steps[k + 1]
        steps[k].fuse = (
            net.layer_types[k] == "BatchNorm" and net.layer_types[k + 1] == "Scale"
            and getattr(bn.layer, "use_global", False) and len(bn.layer.blobs) == 3
            and len(bn.tops) == 1 and not bn.loss and not bn.detach
            and sc.bottoms == bn.tops and sc.tops == sc.bottoms and not sc.loss and not sc.detach
            and len(sc.layer.blobs) == 2 and getattr(sc.layer, "axis", None) == 1
            and getattr(sc.layer, "bias_axis", None) == 1
            and len(net.blob_shapes[bn.bottoms[0]]) >= 2
            and tuple(sc.layer.blobs[0].shape) == (net.blob_shapes[bn.bottoms[0]][1],)
            and tuple(sc.layer.blobs[1].shape) == tuple(sc.layer.blobs[0].shape))


def bn_scale(bn, scale, x):
    """The fused forward of a planned BatchNorm + Scale pair. The effective statistics (blob * 1/factor)
    are cached on the BatchNorm module until one of its blobs changes (tensor version counters)."""
    mean, var, factor = bn.blobs
    if not fastswitch.enabled(x):   # [scale-out] traced / autocast / off the CPU: no data_ptr cache; fp32
        f = cm.batchnorm_scale_factor(factor.detach())
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return F.batch_norm(x, mean.detach() * f, var.detach() * f, scale.blobs[0], scale.blobs[1],
                            training=False, eps=bn.eps)
    key = tuple((t._version, t.data_ptr()) for t in (mean, var, factor))
    cached = getattr(bn, "_fused_stats", None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            f = cm.batchnorm_scale_factor(factor.detach())
            cached = bn._fused_stats = (key, mean.detach() * f, var.detach() * f)
    return F.batch_norm(x, cached[1], cached[2], scale.blobs[0], scale.blobs[1], training=False, eps=bn.eps)


# -- inference chains: Convolution [+ BatchNorm + Scale] [+ ReLU], InnerProduct [+ ReLU] ---------------
#
# When no gradient is wanted (torch.no_grad(), a grad-free step, or frozen weights on an input that
# needs none), a convolution or inner product followed by in-place BatchNorm(global) + Scale and/or an
# in-place ReLU runs as one oneDNN call: the BatchNorm/Scale affine is folded into the weights
# (computed in float64, rounded once), the ReLU is fused, and convolution weights are reordered once
# into oneDNN's blocked layout and cached until a blob changes. Every blob the chain writes is the same
# in-place blob, so net.blobs holds exactly what the unfused layers would leave there (Caffe's values
# to float32 rounding). CPU float32 only; ``net.fast_inference = False`` runs the layers one by one.

def _inplace_on(step, name):
    return step.bottoms == [name] and step.tops == [name] and not step.loss and not step.detach


def plan_chains(net):
    """Set step.chain = number of steps the fused call covers (>= 1) on eligible Convolution /
    InnerProduct steps, else 0."""
    steps, types = net._steps, net.layer_types
    for k, s in enumerate(steps):
        s.chain = 0
        lay = s.layer
        if len(s.bottoms) != 1 or len(s.tops) != 1 or s.loss or s.detach:
            continue
        if types[k] == "Convolution":
            g = lay.geo
            if g.n_sp != 2 or g.axis != 1 or len(g.outer) != 1 or any(lay.extra):
                continue
        elif types[k] == "InnerProduct":
            if lay.transpose:
                continue
        else:
            continue
        name, j = s.tops[0], k + 1
        if (types[k] == "Convolution" and j + 1 < len(steps) and steps[j].fuse
                and _inplace_on(steps[j], name) and _inplace_on(steps[j + 1], name)):
            j += 2
        if (j < len(steps) and types[j] == "ReLU" and _inplace_on(steps[j], name)
                and steps[j].layer.negative_slope == 0.0):
            j += 1
        s.chain = j - k


def chain_ready(net, k, x):
    """Whether step k may run as its fused inference chain on bottom x now."""
    s = net._steps[k]
    if not _ONEDNN or not fastswitch.enabled(x) or x.dtype != torch.float32 \
            or (s.key is not None and s.key[0] != tuple(x.shape)):
        return False
    if net.layer_types[k] == "InnerProduct" and not onednn_linear_ok(x, s.layer.blobs[0]):
        return False
    if not torch.is_grad_enabled() or s.grad_free:
        return True
    if x.requires_grad:
        return False
    return not any(p.requires_grad for i in range(k, k + s.chain) for p in net._steps[i].layer.blobs)


def run_chain(net, k, x):
    """The fused forward of the chain starting at step k (see plan_chains)."""
    steps = net._steps
    s = steps[k]
    lay = s.layer
    attr = "relu" if net.layer_types[k + s.chain - 1] == "ReLU" else "none"
    with torch.no_grad():
        if net.layer_types[k] == "InnerProduct":   # the plain weight: no cached copy of big fc weights
            b = lay.blobs[1].detach() if lay.bias_term else None
            return onednn_linear(x.reshape(-1, lay.K), lay.blobs[0].detach(), b, attr).reshape(lay.top_shapes[0])
        bn = sc = None
        if s.chain >= 3 and net.layer_types[k + 1] == "BatchNorm":
            bn, sc = steps[k + 1].layer, steps[k + 2].layer
        sources = list(lay.blobs) + (list(bn.blobs) + list(sc.blobs) if bn is not None else [])
        key = (tuple((t._version, t.data_ptr()) for t in sources), tuple(x.shape))
        cached = getattr(lay, "_packed", None)
        if cached is None or cached[0] != key:
            cached = lay._packed = (key,) + _pack(lay, bn, sc, x)
        # channels-last throughout (the fused call's layout): oneDNN's blocked NCHW kernels are 10-25%
        # faster for single 5x5+ convolutions, but the layout copies around them cost more (whole
        # nets: GoogLeNet ~20%, CaffeNet ~7% faster all channels-last)
        g = lay.geo
        return torch.ops.mkldnn._convolution_pointwise(x, cached[1], cached[2], g.pad, g.stride, g.dilation,
                                                       lay.group, attr, [], "")


def _pack(lay, bn, sc, x):
    """Convolution weights with BatchNorm + Scale folded in, reordered for oneDNN; the bias."""
    w = lay.blobs[0].detach()
    b = lay.blobs[1].detach() if lay.bias_term else None
    if bn is not None:
        mean, var, factor = (t.detach().double() for t in bn.blobs)
        f = cm.batchnorm_scale_factor(factor)
        inv = (var * f + bn.eps).rsqrt() * sc.blobs[0].detach().double()
        w = (w.double() * inv.view(-1, *([1] * (w.dim() - 1)))).float()
        b0 = b.double() if b is not None else 0.0
        b = ((b0 - mean * f) * inv + sc.blobs[1].detach().double()).float()
    g = lay.geo
    wp = torch.ops.mkldnn._reorder_convolution_weight(w.contiguous(), g.pad, g.stride, g.dilation,
                                                      lay.group, list(x.shape))
    return wp, (b.contiguous() if b is not None else None)


# -- in-place ReLU under autograd --------------------------------------------------------------------
#
# Caffe runs an in-place ReLU on the blob itself. Under autograd we may do the same (torch.relu_, no
# new tensor, one memory pass less) when the blob was made by the step just before in the same forward
# call, by an op whose backward does not read its own output (so no saved tensor changes), and nobody
# else holds the pre-ReLU tensor: no forward hooks (the pycaffe facade's diffs, user hooks) and no
# retained blob grads. Gradients are bit-identical to the out-of-place ReLU's.

_OUTPUT_FREE_BACKWARD = frozenset(("ConvolutionBackward0", "MkldnnConvolutionBackward0", "AddmmBackward0",
                                   "_InnerProductFnBackward", "NativeBatchNormBackward0", "AddBackward0",
                                   "_ConvMMBackward"))


def plan_inplace_relu(net):
    steps, types = net._steps, net.layer_types
    for k, s in enumerate(steps):
        s.relu_inplace = (
            k > 0 and types[k] == "ReLU" and s.layer.negative_slope == 0.0 and len(s.bottoms) == 1
            and s.tops == s.bottoms and not s.loss and not s.detach and s.bottoms[0] in steps[k - 1].tops)


def relu_in_place_ok(net, k, x):
    steps = net._steps
    return (x.requires_grad and torch.is_grad_enabled() and not net.retain_blob_grads
            and type(x.grad_fn).__name__ in _OUTPUT_FREE_BACKWARD
            and not steps[k].layer._forward_hooks and not steps[k - 1].layer._forward_hooks
            and not steps[k].layer._forward_pre_hooks)
