"""SSD's MultiBoxLoss (weiliu89/caffe ssd: src/caffe/layers/multibox_loss_layer.cpp, with the rules of
src/caffe/util/bbox_util.cpp in ssd_match.py). AnnotatedData, its data layer, is in ssd_data.py.

Bottoms: location predictions (N, P*4, or P*classes*4 without share_location), confidences
(N, P*classes, raw scores), the PriorBox output (1, 2, P*4) and the label blob (1, 1, G, 8) of
AnnotatedData. Top: the loss. Per forward, on the detached blobs (float32, as the fork): ground
truth per image, matching of priors (or decoded predictions without use_prior_for_matching) to it,
mining of negatives; then, differentiably:

    loss = loc_weight * L_loc / normalizer + L_conf / normalizer

L_loc: Smooth L1 (|d| < 1: d^2 / 2, else |d| - 1/2) or L2 (d^2 / 2) summed over the matched priors'
4 offsets against their encoded ground truth; L_conf: softmax cross-entropy (-log max(p, FLT_MIN))
summed over positives (their ground truth label) and mined negatives (background), or all priors
without mining; LOGISTIC: the sigmoid cross-entropy summed over every class of those rows (one-hot
targets). normalizer: loss_param.normalization (default VALID = the number of matches; FULL N*P;
BATCH_SIZE N; NONE 1), at least 1. A term is counted only when its bottom propagates down
(propagate_down; the fork's default is true, true, false, false). Gradients reach loc and conf only
(autograd of the above with the matches fixed: the fork's Backward); the priors and labels get none.

Differences from the fork, documented: ties in the mining order keep the lower prior first; LOGISTIC
targets start at 0 for every class (the fork fills them with background_label_id and, without
mining, offsets the per-image targets by P rather than P*classes); nms_param (NMS before mining)
is refused.
"""
import numpy as np
import torch
import torch.nn.functional as F

from . import ssd_match as M
from .base import Layer, count
from .loss import VALID, normalization_mode, normalizer
from .registry import register
from .ssd_detection import CENTER_SIZE, CORNER, CORNER_SIZE, decode_boxes

_LOG_FLT_MIN = float(np.log(M.FLT_MIN))


class Plan:
    """One forward's matching result: positives (image, prior, loc slot, target row, class), the
    mined negatives (image, prior) and the match count the normalizer uses."""

    def __init__(self):
        self.pos_img, self.pos_prior, self.pos_slot, self.pos_label, self.targets = [], [], [], [], []
        self.inside = []           # bp_inside: per positive, 4 flags "use the target" (zero gradient)
        self.neg_img, self.neg_prior = [], []
        self.num_matches = 0
        self.priors = 0


@register("MultiBoxLoss")
class MultiBoxLoss(Layer):
    exact_bottoms = 4
    exact_tops = 1
    is_loss = True
    dynamic_shapes = True          # the label blob's row count changes with every batch

    fork_param = "multibox_loss_param"

    def setup(self, p):
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("multibox_loss_param needs num_classes (>= 1)")
        self.num_classes = int(p.num_classes)
        self.share_location = p.share_location
        self.loc_classes = 1 if self.share_location else self.num_classes
        self.background = int(p.background_label_id)
        self.mining = p.mining_type
        if p.HasField("do_neg_mining") and p.do_neg_mining != (self.mining != M.NO_MINING):
            raise self.error(f"do_neg_mining: {str(p.do_neg_mining).lower()} contradicts mining_type "
                             f"{M._MB.MiningType.Name(self.mining)} (do_neg_mining is deprecated; drop it)")
        if p.code_type not in (CORNER, CENTER_SIZE, CORNER_SIZE):
            raise self.error(f"unknown code_type {p.code_type}; valid: CORNER, CENTER_SIZE, CORNER_SIZE")
        if p.HasField("nms_param"):
            raise self.error("nms_param (NMS before mining) is not supported; remove it")
        if p.map_object_to_agnostic and self.num_classes != 2:
            raise self.error(f"map_object_to_agnostic needs num_classes 2, got {self.num_classes}")
        if self.mining == M.MAX_NEGATIVE and p.neg_pos_ratio <= 0:
            raise self.error(f"neg_pos_ratio must be > 0 for MAX_NEGATIVE mining, got {p.neg_pos_ratio}")
        if self.mining == M.HARD_EXAMPLE and p.sample_size <= 0:
            raise self.error(f"sample_size must be > 0 for HARD_EXAMPLE mining, got {p.sample_size}")
        self.p = p
        self.mode = normalization_mode(self.lp, VALID)
        down = list(self.lp.propagate_down) or [True, True, False, False]
        self.use_loc, self.use_conf = bool(down[0]), bool(down[1])
        self._check(self.bottom_shapes)
        self.top_shapes = [()]

    def _check(self, shapes):
        loc, conf, prior, gt = (tuple(s) for s in shapes)
        if len(prior) < 3 or prior[1] != 2 or count(prior, 2) % 4:
            raise self.error(f"prior bottom {prior} must be (1, 2, priors*4): boxes, then variances")
        priors = count(prior, 2) // 4
        if loc[0] != conf[0]:
            raise self.error(f"location and confidence bottoms disagree on the batch size: {loc} vs {conf}")
        if count(loc, 1) != priors * self.loc_classes * 4:
            raise self.error(f"location bottom {loc} does not hold {priors} priors x {self.loc_classes} x 4")
        if count(conf, 1) != priors * self.num_classes:
            raise self.error(f"confidence bottom {conf} does not hold {priors} priors x {self.num_classes} "
                             "classes")
        if count(gt) % 8 or (len(gt) >= 1 and gt[-1] != 8):
            raise self.error(f"label bottom {gt} must be (1, 1, boxes, 8) rows [item, label, instance, "
                             "xmin, ymin, xmax, ymax, difficult]")
        return priors

    # -- the plan (no gradient) -------------------------------------------------------------------
    def plan(self, loc, conf, prior, gt):
        """Match, encode and mine on the detached blobs (see the module docstring)."""
        p = self.p
        priors = self._check([loc.shape, conf.shape, prior.shape, gt.shape])
        num = loc.shape[0]
        pb = prior.detach().float().cpu().numpy().reshape(2, priors, 4)
        boxes, var = pb[0], pb[1]
        loc_np = loc.detach().float().cpu().numpy().reshape(num, priors, self.loc_classes, 4)
        conf_np = conf.detach().float().cpu().numpy().reshape(num, priors, self.num_classes)
        truth = M.ground_truth(gt.detach().float().cpu().numpy(), self.background, p.use_difficult_gt,
                               self.num_classes, self.error)
        plan = Plan()
        plan.priors = priors
        for i in range(num):
            g = truth.get(i)
            if g is None:
                continue                 # no ground truth: no positives, no mined negatives
            matches, overlaps = self._match(g, boxes, var, loc_np[i])
            labels = np.full(priors, self.background, np.int64)
            for label in sorted(matches, reverse=True):       # the first label with a match wins
                m = matches[label]
                labels[m > -1] = g.labels[m[m > -1]]
            losses = M.prior_conf_loss(conf_np[i], labels, p.conf_loss_type) if self.mining else None
            if self.mining == M.HARD_EXAMPLE:
                losses = losses + self._loc_losses(matches, g, boxes, var, loc_np[i])
            negs = M.mine(matches, overlaps, losses, self.mining, p.neg_pos_ratio, p.neg_overlap,
                          p.sample_size)
            for label in sorted(matches):
                m = matches[label]
                for j in np.flatnonzero(m > -1):
                    self._add_positive(plan, i, int(j), label, g, int(m[j]), boxes, var, loc_np[i])
            plan.neg_img += [i] * len(negs)
            plan.neg_prior += negs
        plan.num_matches = len(plan.pos_img)
        return plan

    def _match(self, g, boxes, var, loc_i):
        p = self.p
        matches, overlaps = {}, {}
        if not p.use_prior_for_matching:
            for c in range(self.loc_classes):
                label = -1 if self.share_location else c
                if label == self.background:
                    continue
                decoded = decode_boxes(boxes, var, loc_i[:, c], p.code_type, p.encode_variance_in_target)
                matches[label], overlaps[label] = M.match_boxes(
                    g, decoded, label, p.match_type, p.overlap_threshold, p.ignore_cross_boundary_bbox)
            return matches, overlaps
        idx, ov = M.match_boxes(g, boxes, -1, p.match_type, p.overlap_threshold, p.ignore_cross_boundary_bbox)
        if self.share_location:
            return {-1: idx}, {-1: ov}
        for c in range(self.loc_classes):
            if c == self.background:
                continue
            m = np.full_like(idx, -1)
            hit = idx > -1
            hit[hit] = g.labels[idx[hit]] == c
            m[hit] = idx[hit]
            matches[c], overlaps[c] = m, ov.copy()
        return matches, overlaps

    def _loc_losses(self, matches, g, boxes, var, loc_i):
        """ComputeLocLoss: per prior, the loc loss of its match (0 for the others)."""
        p = self.p
        out = np.zeros(len(boxes), np.float32)
        for label in sorted(matches):
            m = matches[label]
            js = np.flatnonzero(m > -1)
            if not len(js):
                continue
            t = M.encode_boxes(boxes[js], var[js], g.boxes[m[js]], p.code_type, p.encode_variance_in_target)
            d = loc_i[js, 0 if self.share_location else label] - t
            out[js] = M.smooth_l1_rows(d) if p.loc_loss_type == M.SMOOTH_L1 else (np.float32(0.5) * d * d).sum(1)
        return out

    def _add_positive(self, plan, i, j, label, g, k, boxes, var, loc_i):
        p = self.p
        slot = 0 if self.share_location else label
        target = M.encode_boxes(boxes[j], var[j], g.boxes[k], p.code_type, p.encode_variance_in_target)[0]
        plan.pos_img.append(i)
        plan.pos_prior.append(j)
        plan.pos_slot.append(slot)
        plan.pos_label.append(self.background + 1 if p.map_object_to_agnostic else int(g.labels[k]))
        plan.targets.append(target)
        if p.bp_inside:
            box = boxes[j]
            if not p.use_prior_for_matching:
                box = decode_boxes(boxes[j], var[j], loc_i[j, slot], p.code_type, p.encode_variance_in_target)
            plan.inside.append((box < 0) | (box > 1))

    # -- the loss (differentiable) ----------------------------------------------------------------
    def loss(self, plan, loc, conf):
        p = self.p
        num = loc.shape[0]
        priors = plan.priors
        norm = normalizer(self.mode, num, priors, plan.num_matches)
        total = loc.new_zeros(())
        if self.use_loc and plan.num_matches:
            pred = loc.reshape(num, priors, self.loc_classes, 4)[plan.pos_img, plan.pos_prior, plan.pos_slot]
            target = torch.from_numpy(np.stack(plan.targets)).to(pred)
            if plan.inside:
                pred = torch.where(torch.from_numpy(np.stack(plan.inside)).to(pred.device), target, pred)
            d = pred - target
            if p.loc_loss_type == M.SMOOTH_L1:
                a = d.abs()
                term = torch.where(a < 1, 0.5 * d * d, a - 0.5).sum()
            else:
                term = 0.5 * (d * d).sum()
            total = total + float(p.loc_weight) * term / norm
        if self.use_conf:
            scores = conf.reshape(num, priors, self.num_classes)
            if self.mining != M.NO_MINING:
                rows = scores[plan.pos_img + plan.neg_img, plan.pos_prior + plan.neg_prior]
                labels = plan.pos_label + [self.background] * len(plan.neg_img)
            else:
                lab = np.full((num, priors), self.background, np.int64)
                lab[plan.pos_img, plan.pos_prior] = plan.pos_label
                rows, labels = scores.reshape(-1, self.num_classes), lab.reshape(-1).tolist()
            if len(labels):
                total = total + self._conf_term(rows, labels) / norm
        return total

    def _conf_term(self, rows, labels):
        lab = torch.as_tensor(labels, dtype=torch.long, device=rows.device)
        if self.p.conf_loss_type == M.SOFTMAX:
            logp = F.log_softmax(rows, 1).gather(1, lab[:, None])
            # value -log(max(p, FLT_MIN)), gradient p - onehot unclamped (SoftmaxWithLoss)
            logp = logp + (logp.clamp(min=_LOG_FLT_MIN) - logp).detach()
            return -logp.sum()
        target = torch.zeros_like(rows)
        if self.mining == M.NO_MINING:      # negatives keep all-zero targets
            keep = lab != self.background
            target[keep.nonzero()[:, 0], lab[keep]] = 1
        else:
            target[torch.arange(len(lab), device=rows.device), lab] = 1
        return F.binary_cross_entropy_with_logits(rows, target, reduction="sum")

    def forward(self, loc, conf, prior, gt):
        return [self.loss(self.plan(loc, conf, prior, gt), loc, conf)]
