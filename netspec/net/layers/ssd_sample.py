"""The SSD fork's augmentation of annotated images (weiliu89/caffe ssd: src/caffe/util/sampler.cpp,
src/caffe/util/bbox_util.cpp, src/caffe/util/im_transforms.cpp and the annotated parts of
src/caffe/data_transformer.cpp), for AnnotatedData (ssd_data.py).

Images are OpenCV's H x W (x C) uint8 arrays; annotations a list of groups ``(group_label,
[(instance_id, box, difficult), ...])`` with ``box`` a float32 [xmin, ymin, xmax, ymax] normalized to
the image. Randomness is a numpy Generator passed in (the fork's caffe_rng_uniform / Rand draws, in
the fork's order; the stream itself cannot be Caffe's).
"""
import numpy as np

from recaffe.protos.forkschema import ssd_pb2

F32 = np.float32
UNIT = np.array([0, 0, 1, 1], F32)
_EMIT = ssd_pb2.EmitConstraint


def box_size(b):
    """BBoxSize (normalized): 0 for an inverted box."""
    w, h = b[2] - b[0], b[3] - b[1]
    return F32(0) if w < 0 or h < 0 else F32(w * h)


def clip_box(b):
    """ClipBBox: every coordinate clamped to [0, 1]."""
    return np.clip(np.asarray(b, F32), F32(0), F32(1))


def intersect(a, b):
    """IntersectBBox: the overlap of two boxes, [0, 0, 0, 0] when they are disjoint."""
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return np.zeros(4, F32)
    return np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])], F32)


def jaccard(a, b):
    """JaccardOverlap (normalized): intersection / union, 0 without a positive-area intersection."""
    i = intersect(a, b)
    iw, ih = i[2] - i[0], i[3] - i[1]
    if iw > 0 and ih > 0:
        inter = F32(iw * ih)
        return F32(inter / (box_size(a) + box_size(b) - inter))
    return F32(0)


def coverage(a, b):
    """BBoxCoverage: the part of a's area inside b."""
    s = box_size(intersect(a, b))
    return F32(s / box_size(a)) if s > 0 else F32(0)


def meets_emit(src, box, emit):
    """MeetEmitConstraint: CENTER keeps a box whose centre lies in src (edges included); MIN_OVERLAP
    one whose coverage by src exceeds emit_overlap."""
    if emit is None:
        return True
    if emit.emit_type == _EMIT.CENTER:
        cx, cy = (box[0] + box[2]) / F32(2), (box[1] + box[3]) / F32(2)
        return bool(src[0] <= cx <= src[2] and src[1] <= cy <= src[3])
    return bool(coverage(box, src) > F32(emit.emit_overlap))


def project(src, box):
    """ProjectBBox: box in the coordinates of src, clipped; None when they do not overlap or nothing
    of positive size is left."""
    if box[0] >= src[2] or box[2] <= src[0] or box[1] >= src[3] or box[3] <= src[1]:
        return None
    w, h = src[2] - src[0], src[3] - src[1]
    out = clip_box([(box[0] - src[0]) / w, (box[1] - src[1]) / h, (box[2] - src[0]) / w, (box[3] - src[1]) / h])
    return out if box_size(out) > 0 else None


def warp_box(box, old_wh, new_wh):
    """UpdateBBoxByResizePolicy for WARP: to pixels of the old size, scaled to the new size, clamped
    to it, normalized again (float32, the fork's order of operations)."""
    ow, oh = F32(old_wh[0]), F32(old_wh[1])
    nw, nh = F32(new_wh[0]), F32(new_wh[1])
    x0, y0, x1, y1 = box[0] * ow, box[1] * oh, box[2] * ow, box[3] * oh
    x0 = max(F32(0), x0 * nw / ow)
    x1 = min(nw, x1 * nw / ow)
    y0 = max(F32(0), y0 * nh / oh)
    y1 = min(nh, y1 * nh / oh)
    return np.array([x0 / nw, y0 / nh, x1 / nw, y1 / nh], F32)


def transform_annotations(groups, crop, mirror=False, emit=None, warp=None):
    """TransformAnnotation: each box (WARP-updated first when ``warp`` = (old_wh, new_wh)) kept if it
    meets the emit constraint w.r.t. ``crop``, projected into ``crop``, then mirrored (x -> 1 - x);
    groups left without boxes are dropped."""
    out = []
    for label, annos in groups:
        kept = []
        for inst, box, difficult in annos:
            if warp is not None:
                box = warp_box(box, *warp)
            if not meets_emit(crop, box, emit):
                continue
            p = project(crop, box)
            if p is None:
                continue
            if mirror:
                p = np.array([F32(1) - p[2], p[1], F32(1) - p[0], p[3]], F32)
            kept.append((inst, p, difficult))
        if kept:
            out.append((label, kept))
    return out


def uniform(rng, a, b):
    """caffe_rng_uniform of one float in [a, b]."""
    return F32(a) if a == b else F32(rng.uniform(float(a), float(b)))


def sample_box(rng, s):
    """SampleBBox: scale in [min_scale, max_scale], aspect ratio in [max(min_ar, scale^2),
    min(max_ar, 1/scale^2)], width scale*sqrt(ar), height scale/sqrt(ar), corner uniform in the rest."""
    scale = uniform(rng, s.min_scale, s.max_scale)
    lo = max(F32(s.min_aspect_ratio), F32(scale * scale))
    hi = min(F32(s.max_aspect_ratio), F32(1 / (scale * scale)))
    ar = uniform(rng, lo, hi)
    w, h = F32(scale * np.sqrt(ar)), F32(scale / np.sqrt(ar))
    x, y = uniform(rng, 0, F32(1) - w), uniform(rng, 0, F32(1) - h)
    return np.array([x, y, x + w, y + h], F32)


def satisfies(box, objects, c):
    """SatisfySampleConstraint: true without constraints; else some object box meets every given
    bound (jaccard overlap, sample coverage, object coverage)."""
    checks = []
    if c.HasField("min_jaccard_overlap") or c.HasField("max_jaccard_overlap"):
        checks.append((lambda o: jaccard(box, o), c, "jaccard_overlap"))
    if c.HasField("min_sample_coverage") or c.HasField("max_sample_coverage"):
        checks.append((lambda o: coverage(box, o), c, "sample_coverage"))
    if c.HasField("min_object_coverage") or c.HasField("max_object_coverage"):
        checks.append((lambda o: coverage(o, box), c, "object_coverage"))
    if not checks:
        return True
    for o in objects:
        ok = True
        for fn, msg, name in checks:
            v = fn(o)
            if msg.HasField("min_" + name) and v < F32(getattr(msg, "min_" + name)):
                ok = False
            if msg.HasField("max_" + name) and v > F32(getattr(msg, "max_" + name)):
                ok = False
        if ok:
            return True
    return False


def batch_samples(rng, groups, samplers):
    """GenerateBatchSamples: for each batch_sampler (use_original_image), up to max_trials draws, each
    kept when it satisfies the constraint, stopping at max_sample found (when given)."""
    objects = [box for _, annos in groups for _, box, _ in annos]
    out = []
    for bs in samplers:
        if not bs.use_original_image:
            continue
        found = 0
        for _ in range(int(bs.max_trials)):
            if bs.HasField("max_sample") and found >= bs.max_sample:
                break
            box = sample_box(rng, bs.sampler)         # LocateBBox in the unit box: unchanged
            if satisfies(box, objects, bs.sample_constraint):
                found += 1
                out.append(box)
    return out


def crop_pixels(img, box):
    """CropImage's pixel window: the clipped box scaled to pixels, offsets and sizes truncated."""
    h, w = img.shape[:2]
    b = clip_box(box)
    x0, y0, x1, y1 = b[0] * F32(w), b[1] * F32(h), b[2] * F32(w), b[3] * F32(h)
    xo, yo = int(x0), int(y0)
    return img[yo:yo + int(y1 - y0), xo:xo + int(x1 - x0)]


def expand(rng, img, ratio, fill):
    """ExpandImage: a canvas int(h*ratio) x int(w*ratio) filled with ``fill`` (per channel, rounded to
    uint8), the image at floor(uniform) offsets; returns the canvas and the image's box seen from it
    ([-w_off/w, -h_off/h, (W - w_off)/w, (H - h_off)/h])."""
    h, w = img.shape[:2]
    H, W = int(h * ratio), int(w * ratio)
    ho = float(np.floor(uniform(rng, 0, F32(H - h))))
    wo = float(np.floor(uniform(rng, 0, F32(W - w))))
    canvas = np.empty((H, W) + img.shape[2:], np.uint8)
    canvas[...] = np.clip(np.rint(np.asarray(fill, np.float64)), 0, 255).astype(np.uint8)
    canvas[int(ho):int(ho) + h, int(wo):int(wo) + w] = img
    box = np.array([F32(-wo) / F32(w), F32(-ho) / F32(h), F32(W - wo) / F32(w), F32(H - ho) / F32(h)], F32)
    return canvas, box


def _scale_shift(img, alpha, beta):
    """cv::Mat::convertTo(-1, alpha, beta) on uint8: rounded and saturated."""
    return np.clip(np.rint(img.astype(F32) * F32(alpha) + F32(beta)), 0, 255).astype(np.uint8)


def distort(rng, img, p, cv):
    """ApplyDistort (BGR images): with probability 1/2 brightness, contrast, saturation, hue, channel
    order; else brightness, saturation, hue, contrast, channel order. Each step happens with its own
    probability; saturation and hue work on OpenCV's HSV (hue in [0, 180), saturated, not wrapped)."""
    def brightness(x):
        if uniform(rng, 0, 1) < p.brightness_prob:
            d = uniform(rng, -p.brightness_delta, p.brightness_delta)
            return _scale_shift(x, 1, d) if abs(d) > 0 else x
        return x

    def contrast(x):
        if uniform(rng, 0, 1) < p.contrast_prob:
            d = uniform(rng, p.contrast_lower, p.contrast_upper)
            return _scale_shift(x, d, 0) if abs(d - 1) > 1e-3 else x
        return x

    def hsv(x, ch, alpha, beta):
        y = cv.cvtColor(x, cv.COLOR_BGR2HSV)
        y[..., ch] = _scale_shift(y[..., ch], alpha, beta)
        return cv.cvtColor(y, cv.COLOR_HSV2BGR)

    def saturation(x):
        if uniform(rng, 0, 1) < p.saturation_prob:
            return hsv(x, 1, uniform(rng, p.saturation_lower, p.saturation_upper), 0)
        return x

    def hue(x):
        if uniform(rng, 0, 1) < p.hue_prob:
            d = uniform(rng, -p.hue_delta, p.hue_delta)
            return hsv(x, 0, 1, d) if abs(d) > 0 else x
        return x

    def order(x):
        if uniform(rng, 0, 1) < p.random_order_prob:
            return np.ascontiguousarray(x[..., rng.permutation(x.shape[2])])
        return x

    if img.ndim != 3 or img.shape[2] != 3:
        return img                  # the colour steps need BGR
    steps = (brightness, contrast, saturation, hue, order) if uniform(rng, 0, 1) > 0.5 else \
        (brightness, saturation, hue, contrast, order)
    for step in steps:
        img = step(img)
    return img
