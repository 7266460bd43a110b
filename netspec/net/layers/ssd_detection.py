"""SSD's DetectionOutput layer (weiliu89/caffe ssd: src/caffe/layers/detection_output_layer.cpp, with
the box arithmetic of src/caffe/util/bbox_util.cpp, one named function per rule below).

Bottoms: location predictions (N, P*4, or P*4*classes without share_location), confidences
(N, P*classes, already softmaxed) and the PriorBox output (1, 2, P*4: boxes, then variances; with
variance_encoded_in_target also (1, 1, P*4), as OpenCV accepts). Per
image: decode every prior with its predicted offsets; per class (background skipped) keep the scores
above confidence_threshold, the top_k best (stable sort), greedy NMS; then at most keep_top_k overall
(best scores). Top: (1, 1, kept, 7) rows [image, label, score, xmin, ymin, xmax, ymax], images in
order, labels ascending within an image, scores descending within a label; no detection at all gives
one row per image [image, -1, -1, -1, -1, -1, -1], as the fork. No backward (the fork has none). The
arithmetic is float32, as the fork's; it runs in numpy on the CPU (small arrays, many steps).
"""
import numpy as np
import torch

from recaffe.protos.forkschema import ssd_pb2
from .base import Layer, count
from .registry import register

_CODE = ssd_pb2.PriorBoxParameter
CORNER, CENTER_SIZE, CORNER_SIZE = _CODE.CORNER, _CODE.CENTER_SIZE, _CODE.CORNER_SIZE


def decode_boxes(prior, var, loc, code_type, variance_in_target):
    """bbox_util.cpp DecodeBBox for all priors at once, in float32: prior, var, loc (..., 4) ->
    corners (..., 4).

    CORNER: prior corner + var * loc; CENTER_SIZE: centre prior_centre + var * loc * prior_size, size
    prior_size * exp(var * loc); CORNER_SIZE: prior corner + var * loc * prior_size. With
    variance_encoded_in_target the variances are taken as 1."""
    prior, var, loc = (np.asarray(a, np.float32) for a in (prior, var, loc))
    if variance_in_target:
        var = np.ones_like(var)
    if code_type == CORNER:
        return prior + var * loc
    pw = prior[..., 2] - prior[..., 0]
    ph = prior[..., 3] - prior[..., 1]
    if code_type == CORNER_SIZE:
        return prior + var * loc * np.stack([pw, ph, pw, ph], -1)
    cx = (prior[..., 0] + prior[..., 2]) / np.float32(2)
    cy = (prior[..., 1] + prior[..., 3]) / np.float32(2)
    dcx = var[..., 0] * loc[..., 0] * pw + cx
    dcy = var[..., 1] * loc[..., 1] * ph + cy
    dw = np.exp(var[..., 2] * loc[..., 2]) * pw
    dh = np.exp(var[..., 3] * loc[..., 3]) * ph
    half = np.float32(2)
    return np.stack([dcx - dw / half, dcy - dh / half, dcx + dw / half, dcy + dh / half], -1)


def box_size(b):
    """BBoxSize for normalized boxes: width * height, 0 for an inverted box."""
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return np.where((w < 0) | (h < 0), np.float32(0), w * h)


def jaccard(a, b):
    """JaccardOverlap (normalized, float32) of every box in a (n, 4) with every box in b (m, 4): 0 for
    disjoint boxes, else intersection / (size a + size b - intersection)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    disjoint = (b[None, :, 0] > a[:, None, 2]) | (b[None, :, 2] < a[:, None, 0]) | \
               (b[None, :, 1] > a[:, None, 3]) | (b[None, :, 3] < a[:, None, 1])
    inter = (ix1 - ix0) * (iy1 - iy0)
    union = box_size(a)[:, None] + box_size(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(disjoint, np.float32(0), inter / union)


def nms_fast(boxes, scores, score_threshold, nms_threshold, eta, top_k):
    """ApplyNMSFast: indices of the kept boxes, best first. Candidates: score > score_threshold,
    sorted by score descending (stable: ties keep index order), cut to top_k (-1: all). A candidate is
    kept when its overlap with every kept box is <= the threshold, which (eta < 1) shrinks by eta after
    each kept box while above 0.5."""
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    cand = np.flatnonzero(scores > np.float32(score_threshold))
    if cand.size == 0:
        return []
    cand = cand[np.argsort(-scores[cand], kind="stable")]
    if -1 < top_k < cand.size:
        cand = cand[:top_k]
    iou = jaccard(boxes[cand], boxes[cand])
    threshold = np.float32(nms_threshold)
    if eta >= 1:     # a fixed threshold: kept iff no earlier kept box overlaps it more
        suppressed = np.zeros(cand.size, bool)
        kept = []
        for i in range(cand.size):
            if not suppressed[i]:
                kept.append(i)
                suppressed |= iou[i] > threshold
        return cand[kept].tolist()
    kept, threshold = [], float(threshold)
    for i in range(cand.size):
        if all(iou[i, j] <= threshold for j in kept):
            kept.append(i)
            if threshold > 0.5:
                threshold *= eta
    return cand[kept].tolist()


@register("DetectionOutput")
class DetectionOutput(Layer):
    exact_bottoms = 3
    exact_tops = 1
    dynamic_shapes = True      # the number of detections changes with the data

    fork_param = "detection_output_param"

    def setup(self, p):
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("detection_output_param needs num_classes (>= 1)")
        self.num_classes = int(p.num_classes)
        self.share_location = p.share_location
        self.background = int(p.background_label_id)
        if self.share_location and self.background == -1:   # DecodeBBoxesAll skips the shared label -1
            raise self.error("background_label_id -1 with share_location: the SSD fork finds no location "
                             "predictions for the shared label -1 (it would stop); use share_location: false "
                             "for nets without a background class")
        self.code_type = p.code_type
        if self.code_type not in (CORNER, CENTER_SIZE, CORNER_SIZE):
            raise self.error(f"unknown code_type {self.code_type}; valid: CORNER, CENTER_SIZE, CORNER_SIZE")
        self.variance_in_target = p.variance_encoded_in_target
        self.keep_top_k = int(p.keep_top_k)
        self.threshold = float(p.confidence_threshold) if p.HasField("confidence_threshold") else -3.4028235e38
        self.nms_threshold = float(p.nms_param.nms_threshold)
        if self.nms_threshold < 0:
            raise self.error(f"nms_threshold must be >= 0, got {self.nms_threshold}")
        self.eta = float(p.nms_param.eta)
        if not 0 < self.eta <= 1:
            raise self.error(f"eta must be in (0, 1], got {self.eta}")
        self.top_k = int(p.nms_param.top_k) if p.nms_param.HasField("top_k") else -1
        self._check(self.bottom_shapes)
        self.top_shapes = [(1, 1, 1, 7)]

    def _check(self, shapes):
        loc, conf, prior = shapes
        channels = prior[1] if len(prior) > 1 else 0
        if len(prior) < 3 or channels not in (1, 2) or (channels == 1 and not self.variance_in_target):
            raise self.error(f"prior bottom {tuple(prior)} must be (1, 2, priors*4) (boxes, variances), or "
                             "(1, 1, priors*4) with variance_encoded_in_target")
        priors = count(prior, 2) // 4
        loc_classes = 1 if self.share_location else self.num_classes
        if count(loc, 1) != priors * loc_classes * 4:
            raise self.error(f"location bottom {tuple(loc)} does not hold {priors} priors x {loc_classes} x 4")
        if count(conf, 1) != priors * self.num_classes:
            raise self.error(f"confidence bottom {tuple(conf)} does not hold {priors} priors x "
                             f"{self.num_classes} classes")
        return priors

    def forward(self, loc, conf, prior):
        with torch.no_grad():
            return [self._detect(loc.detach().cpu(), conf.detach().cpu(), prior.detach().cpu(), loc.dtype)
                    .to(loc.device)]

    def _detect(self, loc, conf, prior, dtype):
        priors = self._check([loc.shape, conf.shape, prior.shape])
        num = loc.shape[0]
        prior = prior.float().numpy().reshape(-1, prior.shape[1], priors, 4)[0]
        if prior.shape[0] == 1:     # variances not given (variance_encoded_in_target)
            prior = np.concatenate([prior, np.ones_like(prior)])
        loc = loc.float().numpy().reshape(num, priors, -1, 4)
        conf = conf.float().numpy().reshape(num, priors, self.num_classes)
        rows = []
        for i in range(num):
            boxes = decode_boxes(prior[0][:, None], prior[1][:, None], loc[i], self.code_type,
                                 self.variance_in_target)               # (P, loc classes, 4)
            dets = []                                                  # (score, label, index)
            for c in range(self.num_classes):
                if c == self.background:
                    continue
                b = boxes[:, 0 if self.share_location else c]
                kept = nms_fast(b, conf[i, :, c], self.threshold, self.nms_threshold, self.eta, self.top_k)
                dets.extend((float(conf[i, k, c]), c, k) for k in kept)
            if -1 < self.keep_top_k < len(dets):
                best = sorted(range(len(dets)), key=lambda j: -dets[j][0])[:self.keep_top_k]
                dets = [dets[j] for j in best]
                dets.sort(key=lambda d: d[1])       # regrouped by label; scores stay descending
            for score, c, k in dets:
                b = boxes[k, 0 if self.share_location else c]
                rows.append([float(i), float(c), score] + b.tolist())
        if not rows:
            out = np.full((1, 1, num, 7), -1.0, np.float32)
            out[0, 0, :, 0] = np.arange(num)
            return torch.from_numpy(out).to(dtype)
        return torch.tensor(rows, dtype=dtype).view(1, 1, -1, 7)
