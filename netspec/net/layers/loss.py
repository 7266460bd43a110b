"""Caffe's probabilistic loss layers: SoftmaxWithLoss, SigmoidCrossEntropyLoss, InfogainLoss,
MultinomialLogisticLoss (the distance losses and Accuracy live in loss_metric.py).

Every loss here returns a scalar top (shape ``()``) whose backward hands each input *Caffe's*
gradient times the top diff (the loss weight seed ``top[0]->cpu_diff()[0]``), not autograd's:
ignored labels get zero gradient, the normaliser follows ``loss_param`` (src/caffe/layers/
loss_layer.cpp, ``LossLayer::GetNormalizer``), labels never get a gradient, and extra tops such as
the softmax probabilities are detached (Caffe ignores their diffs).
"""
import os

import numpy as np
import torch

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import ProtoError
from recaffe.protos.io import read_binary
from .base import Layer, canonical_axis, count
from .precision import fp32
from .registry import register

FLT_MIN = float(np.finfo(np.float32).tiny)  # softmax_loss_layer.cpp: log(max(p, FLT_MIN))
kLOG_THRESHOLD = 1e-20  # include/caffe/layers/loss_layer.hpp

_NORM = caffe_pb2.LossParameter
FULL, VALID, BATCH_SIZE, NONE = _NORM.FULL, _NORM.VALID, _NORM.BATCH_SIZE, _NORM.NONE


class CaffeGrad(torch.autograd.Function):
    """``loss`` (computed without autograd) whose backward gives ``inputs[i]`` the precomputed
    ``grads[i] * top_diff``. Call through :func:`with_caffe_grad`."""

    @staticmethod
    def forward(ctx, loss, n, *tensors):
        ctx.n = n
        ctx.save_for_backward(*tensors[n:])
        return loss.clone()

    @staticmethod
    def backward(ctx, top_diff):
        grads = ctx.saved_tensors
        out = [None, None]
        out += [g * top_diff if need else None for g, need in zip(grads, ctx.needs_input_grad[2:])]
        return tuple(out + [None] * ctx.n)


def needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def with_caffe_grad(loss, inputs, grad_fn):
    """Attach Caffe's gradient to ``loss``: ``grad_fn()`` returns one gradient per input (for a loss
    weight of 1); it is only evaluated when some input requires grad."""
    if not needs_grad(*inputs):
        return loss
    grads = [g.to(x.dtype).reshape(x.shape) for g, x in zip(grad_fn(), inputs)]
    return CaffeGrad.apply(loss, len(inputs), *inputs, *grads)


def normalization_mode(lp, default):
    """``normalization`` if present, else legacy ``normalize`` (true -> VALID, false -> BATCH_SIZE),
    else the layer's default (presence matters: softmax_loss_layer.cpp, sigmoid_cross_entropy_loss_layer.cpp)."""
    p = lp.loss_param
    if p.HasField("normalization"):
        return p.normalization
    if p.HasField("normalize"):
        return VALID if p.normalize else BATCH_SIZE
    return default


def normalizer(mode, outer, inner, valid_count):
    """LossLayer::GetNormalizer: FULL outer*inner, VALID the non-ignored count, BATCH_SIZE outer,
    NONE 1; clamped to >= 1 so that an all-ignored batch gives 0, not NaN."""
    n = {FULL: outer * inner, VALID: valid_count, BATCH_SIZE: outer, NONE: 1}[mode]
    return max(1.0, float(n))


def labels_as_int(label):
    """Caffe reads labels as floats and casts with static_cast<int> (truncation toward zero)."""
    return label.detach().to(torch.int64)


class LossBase(Layer):
    """Caffe's LossLayer: two bottoms sharing their first dimension, one scalar top."""
    is_loss = True
    exact_bottoms = 2
    exact_tops = 1

    def setup(self, p):
        lp, b = self.lp, self.bottom_shapes
        for i in (0, 1):    # LossLayer::Reshape reads shape(0) of both (a 0-axis blob fails its check)
            if not len(b[i]):
                raise self.error(f"bottom '{lp.bottom[i]}' has no axes (shape ()); a loss needs (num, ...)")
        if b[0][0] != b[1][0]:
            raise self.error(f"bottoms '{lp.bottom[0]}' {b[0]} and '{lp.bottom[1]}' {b[1]} must have "
                             "the same first dimension (loss_layer.cpp)")
        self.has_ignore = lp.loss_param.HasField("ignore_label")
        self.ignore_label = lp.loss_param.ignore_label
        self.top_shapes = [()]

    def valid_mask(self, lab):
        return lab != self.ignore_label if self.has_ignore else torch.ones_like(lab, dtype=torch.bool)

    def check_labels(self, lab, valid, num_classes):
        bad = valid & ((lab < 0) | (lab >= num_classes))
        if bool(bad.any()):
            v = int(lab[bad][0])
            raise self.error(f"label value {v} out of range: valid labels are 0..{num_classes - 1}"
                             + (f" or ignore_label {self.ignore_label}" if self.has_ignore else ""))


def _softmax_split(layer, shape, axis_field):
    axis = canonical_axis(layer, axis_field, len(shape))
    return axis, count(shape, 0, axis), int(shape[axis]), count(shape, axis + 1)


def _check_label_count(layer, outer, inner, label_shape, axis):
    if outer * inner != count(label_shape):
        raise layer.error(f"label count {count(label_shape)} must equal outer*inner = {outer * inner} "
                          f"(e.g. prediction (N, C, H, W) with axis {axis} needs N*H*W labels)")


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(LossBase):
    """softmax_loss_layer.cpp: -log(max(p[label], FLT_MIN)) over non-ignored positions / normaliser;
    gradient (p - onehot) at kept positions, 0 at ignored ones; optional second top = p."""
    exact_tops = None
    min_tops, max_tops = 1, 2
    param_field = "softmax_param"

    def setup(self, p):
        super().setup(p)
        lp, shape = self.lp, self.bottom_shapes[0]
        self.axis, self.outer, self.channels, self.inner = _softmax_split(self, shape, p.axis)
        _check_label_count(self, self.outer, self.inner, self.bottom_shapes[1], self.axis)
        self.mode = normalization_mode(lp, VALID)
        self.top_shapes = [()] + ([shape] if len(lp.top) == 2 else [])

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x, label):
        o, c, i = self.outer, self.channels, self.inner
        p = torch.softmax(x.detach().reshape(o, c, i), dim=1)
        lab = labels_as_int(label).reshape(o, i)
        valid = self.valid_mask(lab)
        self.check_labels(lab, valid, c)
        idx = torch.where(valid, lab, torch.zeros_like(lab)).unsqueeze(1)
        p_lab = p.gather(1, idx).squeeze(1)
        norm = normalizer(self.mode, o, i, int(valid.sum()))
        loss = -(torch.log(p_lab.clamp_min(FLT_MIN)) * valid).sum() / norm

        def grad():
            g = p.scatter_add(1, idx, -torch.ones_like(p_lab).unsqueeze(1))
            return [g * valid.unsqueeze(1) / norm]
        tops = [with_caffe_grad(loss, [x], grad)]
        if len(self.lp.top) == 2:
            tops.append(p.reshape(x.shape))
        return tops


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(LossBase):
    """sigmoid_cross_entropy_loss_layer.cpp (master): stable per-element cross entropy, targets with
    int(t) == ignore_label skipped; default normalisation BATCH_SIZE (= shape(0)); gradient
    (sigmoid(x) - t) / normaliser, zero where ignored."""

    def setup(self, p):
        super().setup(p)
        s0, s1 = self.bottom_shapes
        if count(s0) != count(s1):
            raise self.error(f"inputs must have the same count, got {s0} and {s1}")
        self.mode = normalization_mode(self.lp, BATCH_SIZE)
        self.outer = int(s0[0]) if len(s0) else 1
        self.inner = count(s0, 1)

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x, target):
        xd, t = x.detach().reshape(-1), target.detach().reshape(-1).to(x.dtype)
        valid = self.valid_mask(labels_as_int(t))
        pos = (xd >= 0).to(xd.dtype)
        elem = -(xd * (t - pos) - torch.log1p(torch.exp(xd - 2 * xd * pos)))
        norm = normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
        loss = (elem * valid).sum() / norm
        return [with_caffe_grad(loss, [x], lambda: [(torch.sigmoid(xd) - t) * valid / norm])]


def read_infogain_matrix(layer, path):
    """The H matrix of InfogainLoss from a binary BlobProto file (infogain_loss_param.source)."""
    if not os.path.isfile(path):
        raise layer.error(f"infogain_loss_param.source '{path}' does not exist (a binary BlobProto "
                          "holding the K x K matrix H is expected)")
    try:
        blob = read_binary(path, caffe_pb2.BlobProto)    # a regular file under 2 GB; DecodeError named
    except ProtoError as e:
        raise layer.error(f"infogain_loss_param.source: {e}") from None
    data = blob.data if len(blob.data) else blob.double_data
    return torch.tensor(np.asarray(data, dtype=np.float32))


@register("InfogainLoss")
class InfogainLoss(LossBase):
    """infogain_loss_layer.cpp (with its own softmax along infogain_loss_param.axis): loss =
    -sum_k H[label, k] log(max(p_k, 1e-20)) / normaliser (default VALID, ``normalize`` rejected);
    gradient p_k * rowsum(H)[label] - H[label, k]; H from a third bottom or from ``source``."""
    exact_bottoms = exact_tops = None
    min_bottoms, max_bottoms, min_tops, max_tops = 2, 3, 1, 2

    def setup(self, p):
        super().setup(p)
        lp = self.lp
        if lp.loss_param.HasField("normalize"):
            raise self.error('loss_param.normalize is deprecated for InfogainLoss; use "normalization"')
        self.mode = lp.loss_param.normalization
        shape = self.bottom_shapes[0]
        self.axis, self.outer, self.channels, self.inner = _softmax_split(self, shape, p.axis)
        _check_label_count(self, self.outer, self.inner, self.bottom_shapes[1], self.axis)
        k = self.channels
        if len(lp.bottom) == 3:
            h_count = count(self.bottom_shapes[2])
        else:
            if not p.HasField("source"):
                raise self.error("needs the infogain matrix H: a third bottom or infogain_loss_param.source")
            self.register_buffer("infogain", read_infogain_matrix(self, p.source),
                                 persistent=False)
            h_count = self.infogain.numel()
        if h_count != k * k:
            raise self.error(f"H must be {k}x{k} ({k * k} values), got {h_count}")
        self.top_shapes = [()] + ([shape] if len(lp.top) == 2 else [])

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x, label, h=None):
        o, c, i = self.outer, self.channels, self.inner
        H = (self.infogain if h is None else h.detach()).reshape(c, c).to(x.dtype)
        p = torch.softmax(x.detach().reshape(o, c, i), dim=1)
        lab = labels_as_int(label).reshape(o, i)
        valid = self.valid_mask(lab)
        self.check_labels(lab, valid, c)
        rows = H[torch.where(valid, lab, torch.zeros_like(lab))].permute(0, 2, 1)  # (o, c, i)
        rows = rows * valid.unsqueeze(1)
        norm = normalizer(self.mode, o, i, int(valid.sum()))
        loss = -(rows * torch.log(p.clamp_min(kLOG_THRESHOLD))).sum() / norm
        tops = [with_caffe_grad(loss, [x], lambda: [(p * rows.sum(1, keepdim=True) - rows) / norm])]
        if len(self.lp.top) == 2:
            tops.append(p.reshape(x.shape))
        return tops


@register("MultinomialLogisticLoss")
class MultinomialLogisticLoss(LossBase):
    """multinomial_logistic_loss_layer.cpp: bottom 0 holds probabilities (N, D); loss =
    -sum_n log(max(p[n, label], 1e-20)) / N; gradient -1 / (N max(p, 1e-20)) at the label entry."""

    def setup(self, p):
        super().setup(p)
        ls = self.bottom_shapes[1]
        if any(d != 1 for d in ls[1:]):
            raise self.error(f"label bottom must be (N, 1, 1, 1), got {ls}")
        self.num = int(self.bottom_shapes[0][0])
        self.dim = count(self.bottom_shapes[0]) // max(self.num, 1)

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, prob, label):
        p = prob.detach().reshape(self.num, self.dim)
        lab = labels_as_int(label).reshape(-1)[:self.num]
        self.check_labels(lab, torch.ones_like(lab, dtype=torch.bool), self.dim)
        p_lab = p.gather(1, lab.unsqueeze(1)).clamp_min(kLOG_THRESHOLD)
        loss = -torch.log(p_lab).sum() / self.num

        def grad():
            return [torch.zeros_like(p).scatter(1, lab.unsqueeze(1), -1.0 / (self.num * p_lab))]
        return [with_caffe_grad(loss, [prob], grad)]
