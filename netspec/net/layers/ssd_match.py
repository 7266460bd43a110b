"""The box arithmetic of SSD training (weiliu89/caffe ssd, src/caffe/util/bbox_util.cpp): ground truth
from the label blob, prior/ground-truth matching, target encoding and negative mining, for
MultiBoxLoss (ssd_train.py). Plain float32 numpy on the detached blobs, one function per fork rule;
the loss itself (differentiable) is computed from the plan these functions make.

Conventions: a match vector holds, per prior, the index of its ground truth box in the image's list,
-1 for unmatched and -2 for a prior ignored as crossing the image boundary; "overlap" is the
JaccardOverlap of normalized boxes (ssd_detection.jaccard).
"""
import numpy as np

from recaffe.protos.forkschema import ssd_pb2
from .ssd_detection import CENTER_SIZE, CORNER, CORNER_SIZE, jaccard

_MB = ssd_pb2.MultiBoxLossParameter
BIPARTITE, PER_PREDICTION = _MB.BIPARTITE, _MB.PER_PREDICTION
NO_MINING, MAX_NEGATIVE, HARD_EXAMPLE = _MB.NONE, _MB.MAX_NEGATIVE, _MB.HARD_EXAMPLE
SOFTMAX, LOGISTIC = _MB.SOFTMAX, _MB.LOGISTIC
SMOOTH_L1, L2 = _MB.SMOOTH_L1, _MB.L2
FLT_MIN = np.float32(1.17549435e-38)


class GroundTruth:
    """One image's ground truth boxes: ``boxes`` (G, 4) float32 corners, ``labels`` (G,) int."""

    def __init__(self):
        self.boxes, self.labels = [], []

    def freeze(self):
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, np.int64)
        return self


def ground_truth(rows, background_label_id, use_difficult_gt, num_classes, error):
    """GetGroundTruth: the label blob's 8-column rows [item, label, instance, xmin, ymin, xmax, ymax,
    difficult] -> {item: GroundTruth}, rows with item -1 skipped, difficult boxes skipped unless
    use_difficult_gt. A background or out-of-range label is an error (the fork CHECKs it)."""
    out = {}
    for r in np.asarray(rows, np.float32).reshape(-1, 8):
        item = int(r[0])
        if item == -1:
            continue
        label = int(r[1])
        if label == background_label_id:
            raise error(f"found the background label {label} in the ground truth (item {item})")
        if not 0 <= label < num_classes:
            raise error(f"ground truth label {label} (item {item}) is outside [0, {num_classes})")
        if not use_difficult_gt and bool(r[7]):
            continue
        g = out.setdefault(item, GroundTruth())
        g.boxes.append(r[3:7])
        g.labels.append(label)
    return {k: v.freeze() for k, v in out.items()}


def cross_boundary(boxes):
    """IsCrossBoundaryBBox: a coordinate outside [0, 1]."""
    return ((boxes < 0) | (boxes > 1)).any(-1)


def match_boxes(gt, preds, label, match_type, threshold, ignore_cross_boundary):
    """MatchBBox of ground truth ``gt`` against predicted or prior boxes ``preds`` (P, 4): (indices
    (P,) int, overlaps (P,) float32).

    Only ground truths of ``label`` take part (all for -1). Overlaps above 1e-6 count. Bipartite:
    repeatedly the largest overlap between a free prediction and a ground truth still in the pool
    (the first in prediction-then-ground-truth order on ties) is matched, whatever its size, until
    the pool or the overlaps run out. PER_PREDICTION then gives each still free prediction its best
    ground truth among those with overlap >= threshold. ``overlaps`` holds the matched overlap, else
    the best positive overlap (0 if none); cross-boundary predictions (when ignored) get index -2."""
    n = len(preds)
    idx = np.full(n, -1, np.int64)
    best = np.zeros(n, np.float32)
    keep = np.arange(len(gt.labels)) if label == -1 else np.flatnonzero(gt.labels == label)
    if not len(keep):
        return idx, best
    ov = jaccard(preds, gt.boxes[keep])                          # (P, G)
    pos = ov > np.float32(1e-6)
    if ignore_cross_boundary:
        ignored = cross_boundary(np.asarray(preds, np.float32))
        idx[ignored] = -2
        pos[ignored] = False
    best = np.where(pos, ov, np.float32(0)).max(1).astype(np.float32)
    pool = np.ones(len(keep), bool)
    while pool.any():
        cand = np.where(pos & (idx == -1)[:, None] & pool[None, :], ov, np.float32(-1))
        flat = int(np.argmax(cand))
        i, j = divmod(flat, len(keep))
        if cand[i, j] <= 0:
            break
        idx[i] = keep[j]
        best[i] = ov[i, j]
        pool[j] = False
    if match_type == PER_PREDICTION:
        free = np.flatnonzero(idx == -1)
        cand = np.where(pos[free] & (ov[free] >= np.float32(threshold)), ov[free], np.float32(-1))
        j = np.argmax(cand, 1)                         # the first of equal overlaps
        hit = cand[np.arange(len(free)), j] > -1
        idx[free[hit]] = keep[j[hit]]
        best[free[hit]] = ov[free[hit], j[hit]]
    return idx, best


def encode_boxes(prior, var, box, code_type, variance_in_target):
    """EncodeBBox for rows of priors, their variances and the matched ground truths (M, 4), float32.

    CORNER: (box - prior) / var; CENTER_SIZE: centre offset / prior size / var and log(size ratio) /
    var; CORNER_SIZE: (box - prior) / prior size / var; with encode_variance_in_target the variances
    are left out (taken as 1)."""
    prior, var, box = (np.asarray(a, np.float32).reshape(-1, 4) for a in (prior, var, box))
    if variance_in_target:
        var = np.ones_like(var)
    if code_type == CORNER:
        return (box - prior) / var
    pw, ph = prior[:, 2] - prior[:, 0], prior[:, 3] - prior[:, 1]
    if code_type == CORNER_SIZE:
        return (box - prior) / np.stack([pw, ph, pw, ph], 1) / var
    if code_type != CENTER_SIZE:
        raise ValueError(f"unknown code_type {code_type}")
    two = np.float32(2)
    pcx, pcy = (prior[:, 0] + prior[:, 2]) / two, (prior[:, 1] + prior[:, 3]) / two
    bw, bh = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    bcx, bcy = (box[:, 0] + box[:, 2]) / two, (box[:, 1] + box[:, 3]) / two
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.stack([(bcx - pcx) / pw / var[:, 0], (bcy - pcy) / ph / var[:, 1],
                        np.log(bw.astype(np.float64) / pw).astype(np.float32) / var[:, 2],
                        np.log(bh.astype(np.float64) / ph).astype(np.float32) / var[:, 3]], 1)
    return out.astype(np.float32)


def prior_conf_loss(conf, labels, loss_type):
    """ComputeConfLoss for one image: conf (P, C) float32, labels (P,) -> the loss of each prior as
    if its class were ``labels[p]``: softmax -log(max(prob, FLT_MIN)), or the summed logistic loss
    against the one-hot target."""
    conf = np.asarray(conf, np.float32)
    if loss_type == SOFTMAX:
        z = conf - conf.max(1, keepdims=True)
        e = np.exp(z)
        prob = e[np.arange(len(conf)), labels] / e.sum(1)
        return -np.log(np.maximum(prob, FLT_MIN))
    t = np.zeros_like(conf)
    t[np.arange(len(conf)), labels] = 1
    ge = (conf >= 0).astype(np.float32)
    return -(conf * (t - ge) - np.log1p(np.exp(conf - 2 * conf * ge))).sum(1)


def smooth_l1_rows(d):
    a = np.abs(d)
    return np.where(a < 1, np.float32(0.5) * d * d, a - np.float32(0.5)).sum(-1)


def mine(matches, overlaps, losses, mining_type, neg_pos_ratio, neg_overlap, sample_size):
    """MineHardExamples for one image. ``matches``/``overlaps``: {label: (P,) array} in the fork's
    label order (a std::map: ascending); ``losses`` (P,): the per-prior loss the selection ranks (conf
    loss, plus the loc loss of positives for HARD_EXAMPLE). Returns the negatives (list of prior
    indices, in selection order) and updates ``matches`` in place (HARD_EXAMPLE drops unselected
    positives).

    MAX_NEGATIVE: candidates are unmatched priors with overlap < neg_overlap; int(num_pos *
    neg_pos_ratio) of them with the largest loss are picked. HARD_EXAMPLE: every prior is a candidate,
    sample_size are picked. The picked set is shared across the labels of the image, as in the fork.
    Ties in loss keep the lower prior index first (the fork's std::sort leaves them unspecified)."""
    chosen, negs = set(), []
    if mining_type == NO_MINING:
        return negs
    for label in sorted(matches):
        m, ov = matches[label], overlaps[label]
        if mining_type == MAX_NEGATIVE:
            cand = np.flatnonzero((m == -1) & (ov < np.float32(neg_overlap)))
            num_pos = int((m > -1).sum())
            num_sel = min(int(np.float32(num_pos) * np.float32(neg_pos_ratio)), len(cand))
        else:
            cand = np.arange(len(m))
            num_sel = min(int(sample_size), len(cand))
        order = cand[np.argsort(-losses[cand], kind="stable")]
        chosen.update(int(k) for k in order[:num_sel])
        for k in range(len(m)):
            if m[k] > -1:
                if mining_type == HARD_EXAMPLE and k not in chosen:
                    m[k] = -1
            elif m[k] == -1 and k in chosen:
                negs.append(k)
    return negs
