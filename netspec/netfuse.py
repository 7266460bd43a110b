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

from .layers import caffe_math as cm


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
    key = tuple((t._version, t.data_ptr()) for t in (mean, var, factor))
    cached = getattr(bn, "_fused_stats", None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            f = cm.batchnorm_scale_factor(factor.detach())
            cached = bn._fused_stats = (key, mean.detach() * f, var.detach() * f)
    return F.batch_norm(x, cached[1], cached[2], scale.blobs[0], scale.blobs[1], training=False, eps=bn.eps)
