"""Caffe's distance losses (EuclideanLoss, HingeLoss, ContrastiveLoss) and the Accuracy layer.

Shared conventions (scalar top, Caffe's gradient times the top diff, labels without gradient) are
those of loss.py.
"""
import torch

from recaffe.protos import caffe_pb2
from .base import Layer, canonical_axis, count
from .loss import LossBase, labels_as_int, with_caffe_grad
from .precision import fp32
from .registry import register


def _legacy_dims(shape):
    """Blob::LegacyShape view (num, channels, height, width): missing axes read as 1."""
    s = tuple(shape) + (1,) * (4 - len(shape))
    return s[:4] if len(shape) <= 4 else None


@register("EuclideanLoss")
class EuclideanLoss(LossBase):
    """euclidean_loss_layer.cpp: sum((a - b)^2) / (2 N), N = shape(0); both bottoms get a gradient
    (+-(a - b) / N), so plain autograd reproduces it."""

    def setup(self, p):
        super().setup(p)
        a, b = self.bottom_shapes
        if count(a, 1) != count(b, 1) or count(a) != count(b):
            raise self.error(f"inputs must have the same dimensions, got {a} and {b}")

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, a, b):
        d = a - b.reshape(a.shape)
        return [(d * d).sum() / a.shape[0] / 2]


@register("HingeLoss")
class HingeLoss(LossBase):
    """hinge_loss_layer.cpp: m_j = max(0, 1 + x_j) for j != label, max(0, 1 - x_label) for the
    label; L1: sum(m) / N, L2: sum(m^2) / N. Gradient L1: sign(+-m) / N, L2: +-2 m / N."""

    def setup(self, p):
        super().setup(p)
        self.num = int(self.bottom_shapes[0][0])
        self.dim = count(self.bottom_shapes[0]) // max(self.num, 1)
        self.norm = p.norm
        if self.norm not in (caffe_pb2.HingeLossParameter.L1, caffe_pb2.HingeLossParameter.L2):
            raise self.error(f"unknown hinge_loss_param.norm {self.norm}; valid: L1, L2")

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x, label):
        xd = x.detach().reshape(self.num, self.dim)
        lab = labels_as_int(label).reshape(-1)[:self.num]
        self.check_labels(lab, torch.ones_like(lab, dtype=torch.bool), self.dim)
        sign = torch.ones_like(xd).scatter(1, lab.unsqueeze(1), -1.0)
        m = torch.clamp_min(1 + sign * xd, 0)
        if self.norm == caffe_pb2.HingeLossParameter.L1:
            loss = m.sum() / self.num
            return [with_caffe_grad(loss, [x], lambda: [torch.sign(sign * m) / self.num])]
        loss = (m * m).sum() / self.num
        return [with_caffe_grad(loss, [x], lambda: [2 * sign * m / self.num])]


@register("ContrastiveLoss")
class ContrastiveLoss(LossBase):
    """contrastive_loss_layer.cpp: pairs (a, b) with similarity y (int(y) != 0 means similar).
    loss = sum(similar: d^2; dissimilar: max(margin - d, 0)^2, or max(margin - d^2, 0) with
    legacy_version) / (2N). Dissimilar gradient uses Caffe's -(margin - d) / (d + 1e-4)."""
    exact_bottoms = 3

    def setup(self, p):
        super().setup(p)
        a, b, y = (_legacy_dims(s) for s in self.bottom_shapes)
        if a is None or b is None or y is None:
            raise self.error("bottoms must have at most 4 axes: (N, C, 1, 1) and labels (N, 1, 1, 1)")
        if a[1] != b[1] or a[2:] != (1, 1) or b[2:] != (1, 1):
            raise self.error(f"the two inputs must be (N, C, 1, 1) with the same C, got "
                             f"{self.bottom_shapes[0]} and {self.bottom_shapes[1]}")
        if y[1:] != (1, 1, 1):
            raise self.error(f"the similarity bottom must be (N, 1, 1, 1), got {self.bottom_shapes[2]}")
        self.num, self.channels = a[0], a[1]
        self.margin = p.margin
        self.legacy = p.legacy_version

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, a, b, y):
        n, c, margin = self.num, self.channels, self.margin
        diff = (a.detach() - b.detach()).reshape(n, c)
        dist_sq = (diff * diff).sum(1)
        similar = labels_as_int(y).reshape(-1)[:n] != 0
        if self.legacy:
            mdist = margin - dist_sq
            dissim = torch.clamp_min(mdist, 0)
            coef_dis = torch.where(mdist > 0, -torch.ones_like(mdist), torch.zeros_like(mdist))
        else:
            dist = torch.sqrt(dist_sq)
            mdist = margin - dist
            dissim = torch.clamp_min(mdist, 0) ** 2
            coef_dis = torch.where(mdist > 0, -mdist / (dist + 1e-4), torch.zeros_like(mdist))
        loss = torch.where(similar, dist_sq, dissim).sum() / n / 2
        coef = torch.where(similar, torch.ones_like(coef_dis), coef_dis).unsqueeze(1)
        return [with_caffe_grad(loss, [a, b], lambda: [coef * diff / n, -coef * diff / n])]


@register("Accuracy")
class Accuracy(Layer):
    """accuracy_layer.cpp (master): a position counts as correct iff fewer than top_k classes other
    than the true one score >= the true class (ties count against it); positions whose label is
    accuracy_param.ignore_label are skipped; top 0 = correct / counted (0 if none counted);
    optional top 1 = per-class accuracy (0 for absent classes). No gradient."""
    exact_bottoms = 2
    min_tops, max_tops = 1, 2

    def setup(self, p):
        lp = self.lp
        shape = self.bottom_shapes[0]
        self.top_k = p.top_k
        self.axis = canonical_axis(self, p.axis, len(shape))
        self.outer, self.inner = count(shape, 0, self.axis), count(shape, self.axis + 1)
        self.classes = int(shape[self.axis])
        if self.top_k > count(shape) // max(count(self.bottom_shapes[1]), 1):
            raise self.error(f"top_k {self.top_k} must be <= the number of classes")
        if self.outer * self.inner != count(self.bottom_shapes[1]):
            raise self.error(f"label count {count(self.bottom_shapes[1])} must equal outer*inner = "
                             f"{self.outer * self.inner} (e.g. (N, C, H, W) with axis {p.axis} needs N*H*W labels)")
        self.has_ignore = p.HasField("ignore_label")
        self.ignore_label = p.ignore_label
        self.top_shapes = [()] + ([(self.classes,)] if len(lp.top) == 2 else [])

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x, label):
        o, c, i = self.outer, self.classes, self.inner
        s = x.detach().reshape(o, c, i)
        lab = labels_as_int(label).reshape(o, i)
        valid = lab != self.ignore_label if self.has_ignore else torch.ones_like(lab, dtype=torch.bool)
        bad = valid & ((lab < 0) | (lab >= c))
        if bool(bad.any()):
            raise self.error(f"label value {int(lab[bad][0])} out of range: valid labels are 0..{c - 1}")
        idx = torch.where(valid, lab, torch.zeros_like(lab)).unsqueeze(1)
        true_score = s.gather(1, idx)
        better = (s >= true_score).sum(1) - 1  # the true class itself counts once
        correct = (better < self.top_k) & valid
        n_valid = int(valid.sum())
        acc = correct.sum().to(x.dtype) / n_valid if n_valid else torch.zeros((), dtype=x.dtype, device=x.device)
        tops = [acc.reshape(())]
        if len(self.lp.top) == 2:
            cls = torch.where(valid, lab, torch.full_like(lab, c)).reshape(-1)
            per_n = torch.bincount(cls, minlength=c + 1)[:c].to(x.dtype)
            per_ok = torch.bincount(cls[correct.reshape(-1)], minlength=c + 1)[:c].to(x.dtype)
            tops.append(torch.where(per_n > 0, per_ok / per_n.clamp_min(1), torch.zeros_like(per_n)))
        return tops
