"""SSD training layers (issue #15): MultiBoxLoss and AnnotatedData (netspec/net/layers/ssd_train.py,
ssd_match.py, ssd_data.py, ssd_sample.py).

There is no SSD Caffe in the oracle (BVLC only) and OpenCV DNN has no MultiBoxLoss, so the numbers are
closed forms computed here from the fork's documented rules (bbox_util.cpp, multibox_loss_layer.cpp,
annotated_data_layer.cpp, sampler.cpp): hand-built priors and ground truths whose overlaps are
worked out by hand, CENTER_SIZE targets, mined negatives and loss values from their definitions,
gradients by gradcheck in float64. The corpus train nets (MobileNet-SSD, VGG-SSD) build from their
real prototxt, with a generated AnnotatedDatum LMDB, and MobileNet-SSD trains.
"""
import math
import re

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from corpus import corpus_file, needs_corpus
from recaffe.netspec.data.datum import array_to_datum, encoded_datum
from recaffe.netspec.data.image import encode_hwc
from recaffe.netspec.data.lmdb_io import LMDBWriter
from recaffe.netspec.net.layers import ssd_match as M
from recaffe.netspec.net.layers.ssd_data import annotated_datum, label_map
from recaffe.netspec.net.layers.ssd_train import MultiBoxLoss
from recaffe.netspec.net.net import Net
from recaffe.protos import caffe_pb2, io, printer
from recaffe.protos.errors import DataError, NetError
from recaffe.protos.forks import set_layer_param
from recaffe.protos.forkschema import ssd_pb2
from test_solver_helpers import one_thread

# -- MultiBoxLoss: a hand-built case ---------------------------------------------------------------
PRIORS = np.array([[0, 0, .5, .5],      # P0: IoU .64 with g0 (.16 / .25)
                   [.5, .5, 1, 1],      # P1: = g1 (IoU 1)
                   [0, 0, .4, .5],      # P2: IoU .8 with g0 (.16 / .2)
                   [.6, 0, 1, .4],      # P3: disjoint from both
                   [.6, .6, .7, .7],    # P4: inside g1, IoU .04
                   [.5, .5, 1, .7],     # P5: inside g1, IoU .4
                   [.8, 0, 1, .2]], np.float32)   # P6: disjoint
OVERLAPS = [.64, 1.0, .8, 0, .04, .4, 0]            # best overlap of each prior, by hand
VAR = np.array([.1, .1, .2, .2], np.float32)
G0, G1 = [0, 0, .4, .4], [.5, .5, 1, 1]
GT_ROWS = [[0, 1, 0] + G0 + [0], [0, 2, 0] + G1 + [0]]
# confidences (3 classes): P0 and P5 score high on objects (large background loss) but are not
# eligible negatives (overlap >= neg_overlap .3); among P3, P4, P6 the background loss ranks P6 > P3 > P4
CONF = np.array([[0, 3, 3], [.2, .1, .7], [.5, .9, -.3], [0, 1, 0], [1, 0, 0], [0, 3, 3], [0, 2, 0]], np.float32)
LOC = np.array([[.1, .1, .1, .1], [.5, -.2, 2, .1], [.3, -1.2, -.4, -.5], [0, 0, 0, 0], [.2, .2, .2, .2],
                [0, 0, 0, 0], [0, 0, 0, 0]], np.float32)


def _prior_blob(priors=PRIORS):
    return torch.from_numpy(np.stack([priors.ravel(), np.tile(VAR, len(priors))])[None])


def _layer(num=1, num_classes=3, propagate_down=None, normalization=None, priors=len(PRIORS), **kw):
    kw.setdefault("code_type", ssd_pb2.PriorBoxParameter.CENTER_SIZE)
    lp = caffe_pb2.LayerParameter(name="mbox_loss", type="MultiBoxLoss", bottom=["loc", "conf", "prior", "label"],
                                  top=["loss"])
    set_layer_param(lp, "multibox_loss_param", ssd_pb2.MultiBoxLossParameter(num_classes=num_classes, **kw))
    if propagate_down is not None:
        lp.propagate_down.extend(propagate_down)
    if normalization is not None:
        lp.loss_param.normalization = normalization
    return MultiBoxLoss(lp, [(num, priors * 4), (num, priors * num_classes), (1, 2, priors * 4), (1, 1, 2, 8)])


def _gt(rows=GT_ROWS):
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, -1, 8)


def _center_size(prior, box):
    """CENTER_SIZE target with variance (bbox_util.cpp EncodeBBox), in float64."""
    p, b = np.asarray(prior, np.float64), np.asarray(box, np.float64)
    pw, ph, bw, bh = p[2] - p[0], p[3] - p[1], b[2] - b[0], b[3] - b[1]
    return np.array([((b[0] + b[2]) / 2 - (p[0] + p[2]) / 2) / pw / VAR[0],
                     ((b[1] + b[3]) / 2 - (p[1] + p[3]) / 2) / ph / VAR[1],
                     math.log(bw / pw) / VAR[2], math.log(bh / ph) / VAR[3]])


def _smooth_l1(d):
    d = np.abs(d)
    return float(np.where(d < 1, .5 * d * d, d - .5).sum())


def _nll(row, label):
    row = np.asarray(row, np.float64)
    return float(np.log(np.exp(row - row.max()).sum()) + row.max() - row[label])


def test_matching_bipartite_then_per_prediction():
    g = M.ground_truth(np.array(GT_ROWS), 0, True, 3, NetError)[0]
    idx, ov = M.match_boxes(g, PRIORS, -1, M.BIPARTITE, .5, False)
    assert idx.tolist() == [-1, 1, 0, -1, -1, -1, -1]      # the two best pairs only
    np.testing.assert_allclose(ov, OVERLAPS, atol=1e-6)
    idx, ov = M.match_boxes(g, PRIORS, -1, M.PER_PREDICTION, .5, False)
    assert idx.tolist() == [0, 1, 0, -1, -1, -1, -1]       # + P0 (.64 >= .5); P5 (.4) stays free
    # bipartite matching keeps the best pair even below the threshold: [.6, .6, .75, .75] overlaps P4
    # by .01 / .0225 = .444, P5 by .015 / .1075 = .14, P1 by .0225 / .25 = .09
    low = M.ground_truth(np.array([[0, 1, 0, .6, .6, .75, .75, 0]]), 0, True, 3, NetError)[0]
    idx, ov = M.match_boxes(low, PRIORS, -1, M.PER_PREDICTION, .5, False)
    assert idx.tolist() == [-1, -1, -1, -1, 0, -1, -1]
    np.testing.assert_allclose(ov[[1, 4, 5]], [.09, .01 / .0225, .015 / .1075], atol=1e-6)
    # a prior crossing the image boundary is ignored (-2) with ignore_cross_boundary_bbox
    crossing = np.array([[-.1, 0, .4, .4], [0, 0, .5, .5]], np.float32)
    assert M.match_boxes(g, crossing, -1, M.PER_PREDICTION, .5, True)[0].tolist() == [-2, 0]
    assert M.match_boxes(g, crossing, -1, M.PER_PREDICTION, .5, False)[0].tolist() == [0, 0]


def test_encoding_center_size_corner_and_variance_in_target():
    got = M.encode_boxes(PRIORS[[2, 0]], np.stack([VAR, VAR]), np.array([G0, G0]), M.CENTER_SIZE, False)
    np.testing.assert_allclose(got, [[0, -1, 0, 5 * math.log(.8)], [-1, -1, 5 * math.log(.8), 5 * math.log(.8)]],
                               atol=1e-5)
    np.testing.assert_allclose(got[0], _center_size(PRIORS[2], G0), atol=1e-5)
    got = M.encode_boxes(PRIORS[2], VAR, G0, M.CENTER_SIZE, True)            # variances left out
    np.testing.assert_allclose(got[0], [0, -.1, 0, math.log(.8)], atol=1e-6)
    got = M.encode_boxes(PRIORS[2], VAR, G0, M.CORNER, False)
    np.testing.assert_allclose(got[0], [0, 0, 0, -.5], atol=1e-6)            # (.4 - .5) / .2 on ymax
    got = M.encode_boxes(PRIORS[2], VAR, G0, M.CORNER_SIZE, False)
    np.testing.assert_allclose(got[0], [0, 0, 0, -.1 / .5 / .2], atol=1e-6)


def _expected_bipartite_loss():
    """BIPARTITE, neg_pos_ratio 1: positives P1 (g1, label 2), P2 (g0, label 1); 2 negatives among
    the eligible P3, P4, P6 by background loss: P6, P3."""
    loc = _smooth_l1(LOC[1] - _center_size(PRIORS[1], G1)) + _smooth_l1(LOC[2] - _center_size(PRIORS[2], G0))
    conf = _nll(CONF[1], 2) + _nll(CONF[2], 1) + _nll(CONF[6], 0) + _nll(CONF[3], 0)
    return loc, conf


def _run(layer, loc=LOC, conf=CONF, gt=None, num=1, dtype=torch.float32):
    loc_t = torch.from_numpy(np.tile(loc.reshape(1, -1), (num, 1))).to(dtype).requires_grad_()
    conf_t = torch.from_numpy(np.tile(conf.reshape(1, -1), (num, 1))).to(dtype).requires_grad_()
    loss = layer(loc_t, conf_t, _prior_blob().to(dtype), _gt() if gt is None else gt)[0]
    loss.backward()
    grad = lambda t: (torch.zeros_like(t) if t.grad is None else t.grad).detach().numpy()  # noqa: E731
    return loss.item(), grad(loc_t).reshape(num, -1, 4), grad(conf_t).reshape(num, -1, 3)


def test_multibox_loss_max_negative_closed_form():
    layer = _layer(match_type=M.BIPARTITE, neg_pos_ratio=1.0, neg_overlap=.3)
    plan = layer.plan(torch.from_numpy(LOC.reshape(1, -1)), torch.from_numpy(CONF.reshape(1, -1)), _prior_blob(), _gt())
    assert sorted(plan.pos_prior) == [1, 2] and plan.neg_prior == [3, 6] and plan.num_matches == 2
    loss, dloc, dconf = _run(layer)
    loc, conf = _expected_bipartite_loss()
    assert loss == pytest.approx((loc + conf) / 2, rel=1e-5)
    # gradients only where the fork sends them: matched priors (loc), matched + mined (conf)
    assert np.flatnonzero(np.abs(dloc[0]).sum(1)).tolist() == [1, 2]
    assert np.flatnonzero(np.abs(dconf[0]).sum(1)).tolist() == [1, 2, 3, 6]
    for p, label in ((1, 2), (2, 1), (3, 0), (6, 0)):       # (softmax - onehot) / normalizer
        sm = np.exp(CONF[p] - CONF[p].max())
        sm /= sm.sum()
        np.testing.assert_allclose(dconf[0, p], (sm - np.eye(3)[label]) / 2, atol=1e-6)
    d = LOC[1] - _center_size(PRIORS[1], G1)
    np.testing.assert_allclose(dloc[0, 1], np.clip(d, -1, 1) / 2, atol=1e-6)   # smooth L1'


def test_per_prediction_mines_every_eligible_negative():
    layer = _layer(match_type=M.PER_PREDICTION, neg_pos_ratio=3.0, neg_overlap=.3, loc_weight=2.0)
    loss, _, dconf = _run(layer)
    loc = sum(_smooth_l1(LOC[p] - _center_size(PRIORS[p], g)) for p, g in ((0, G0), (1, G1), (2, G0)))
    conf = _nll(CONF[0], 1) + _nll(CONF[1], 2) + _nll(CONF[2], 1) + sum(_nll(CONF[p], 0) for p in (3, 4, 6))
    assert loss == pytest.approx((2.0 * loc + conf) / 3, rel=1e-5)
    assert np.flatnonzero(np.abs(dconf[0]).sum(1)).tolist() == [0, 1, 2, 3, 4, 6]   # P5 never (overlap .4)


@pytest.mark.parametrize("mode, norm", [(caffe_pb2.LossParameter.VALID, 2), (caffe_pb2.LossParameter.FULL, 14),
                                        (caffe_pb2.LossParameter.BATCH_SIZE, 2), (caffe_pb2.LossParameter.NONE, 1)])
def test_normalization_modes(mode, norm):
    """Two images; the second's only box is difficult and use_difficult_gt is false: it has no ground
    truth, so no positives and no mined negatives."""
    layer = _layer(num=2, normalization=mode, match_type=M.BIPARTITE, neg_pos_ratio=1.0, neg_overlap=.3,
                   use_difficult_gt=False)
    gt = _gt(GT_ROWS + [[1, 1, 0, .1, .1, .3, .3, 1]])
    loss, _, dconf = _run(layer, gt=gt, num=2)
    loc, conf = _expected_bipartite_loss()
    assert loss == pytest.approx((loc + conf) / norm, rel=1e-5)
    assert not dconf[1].any()


def test_propagate_down_selects_the_terms():
    loc, conf = _expected_bipartite_loss()
    only_conf = _layer(propagate_down=[False, True, False, False], match_type=M.BIPARTITE, neg_pos_ratio=1.0,
                       neg_overlap=.3)
    loss, dloc, _ = _run(only_conf)
    assert loss == pytest.approx(conf / 2, rel=1e-5) and not dloc.any()


def test_no_mining_counts_every_prior():
    layer = _layer(num=2, match_type=M.BIPARTITE, mining_type=M.NO_MINING)
    loss, _, dconf = _run(layer, num=2)           # item 1 has no ground truth: all background
    loc = _expected_bipartite_loss()[0]
    conf = sum(_nll(CONF[p], {1: 2, 2: 1}.get(p, 0)) for p in range(7)) + sum(_nll(CONF[p], 0) for p in range(7))
    assert loss == pytest.approx((loc + conf) / 2, rel=1e-5)
    assert np.abs(dconf).sum(2).all()


def test_logistic_confidence_loss():
    layer = _layer(match_type=M.BIPARTITE, neg_pos_ratio=1.0, neg_overlap=.3,
                   conf_loss_type=M.LOGISTIC, loc_loss_type=M.L2)

    def bce(row, label):
        x = np.asarray(row, np.float64)
        t = np.eye(3)[label]
        return float((np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).sum())
    negs = sorted((3, 4, 6), key=lambda p: -bce(CONF[p], 0))[:2]      # the two largest background losses
    loss = _run(layer)[0]
    d1, d2 = LOC[1] - _center_size(PRIORS[1], G1), LOC[2] - _center_size(PRIORS[2], G0)
    loc = .5 * float((d1 ** 2).sum() + (d2 ** 2).sum())
    conf = bce(CONF[1], 2) + bce(CONF[2], 1) + sum(bce(CONF[p], 0) for p in negs)
    assert loss == pytest.approx((loc + conf) / 2, rel=1e-5)


def test_hard_example_mining():
    """HARD_EXAMPLE: every prior is a candidate, ranked by conf loss (+ loc loss of positives); the
    sample_size best are kept; unselected positives are dropped from the matches."""
    layer = _layer(match_type=M.PER_PREDICTION, mining_type=M.HARD_EXAMPLE, sample_size=3)
    match = {0: (G0, 1), 1: (G1, 2), 2: (G0, 1)}
    rank = {p: _nll(CONF[p], match[p][1]) + _smooth_l1(LOC[p] - _center_size(PRIORS[p], match[p][0]))
            if p in match else _nll(CONF[p], 0) for p in range(7)}
    chosen = sorted(rank, key=lambda p: -rank[p])[:3]
    pos = [p for p in chosen if p in match]
    loc = sum(_smooth_l1(LOC[p] - _center_size(PRIORS[p], match[p][0])) for p in pos)
    conf = sum(_nll(CONF[p], match[p][1]) if p in match else _nll(CONF[p], 0) for p in chosen)
    assert _run(layer)[0] == pytest.approx((loc + conf) / max(1, len(pos)), rel=1e-5)


def test_gradcheck_at_fixed_matches():
    layer = _layer(match_type=M.PER_PREDICTION, neg_pos_ratio=3.0, neg_overlap=.3, loc_weight=1.5)
    loc = torch.from_numpy(LOC.reshape(1, -1)).double().requires_grad_()
    conf = torch.from_numpy(CONF.reshape(1, -1)).double().requires_grad_()
    plan = layer.plan(loc, conf, _prior_blob(), _gt())
    assert plan.num_matches == 3 and len(plan.neg_prior) == 3
    assert torch.autograd.gradcheck(lambda a, b: layer.loss(plan, a, b), (loc, conf), eps=1e-6, atol=1e-6)
    logistic = _layer(match_type=M.BIPARTITE, neg_pos_ratio=1.0, neg_overlap=.3, conf_loss_type=M.LOGISTIC)
    plan = logistic.plan(loc, conf, _prior_blob(), _gt())
    assert torch.autograd.gradcheck(lambda a, b: logistic.loss(plan, a, b), (loc, conf), eps=1e-6, atol=1e-6)


def test_bad_inputs_name_the_layer():
    with pytest.raises(NetError, match="mbox_loss.*num_classes"):
        lp = caffe_pb2.LayerParameter(name="mbox_loss", type="MultiBoxLoss", bottom=["a", "b", "c", "d"], top=["l"])
        MultiBoxLoss(lp, [(1, 28), (1, 21), (1, 2, 28), (1, 1, 1, 8)])
    with pytest.raises(NetError, match="does not hold 7 priors x 3 classes"):
        _layer(num_classes=3).forward(torch.zeros(1, 28), torch.zeros(1, 14), _prior_blob(), _gt())
    with pytest.raises(NetError, match="background label 0"):
        _layer().forward(torch.zeros(1, 28), torch.zeros(1, 21), _prior_blob(), _gt([[0, 0, 0] + G0 + [0]]))


# -- AnnotatedData ---------------------------------------------------------------------------------
BOX_A, BOX_B, BOX_C, BOX_D = [.1, .2, .4, .6], [.5, .25, .9, .75], [.0, .5, .5, 1.], [.3, .3, .6, .9]
REC0 = [(1, [(0, BOX_A, False), (1, BOX_B, True)]), (2, [(0, BOX_C, False)])]
REC2 = [(3, [(5, BOX_D, False)])]


def _images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (3, 4, 6), dtype=np.uint8) for _ in range(3)]


def _db(path, records):
    with LMDBWriter(str(path)) as w:
        for k, rec in enumerate(records):
            w.put(f"{k:08d}", rec.SerializeToString())
    return str(path)


def _data_net(tmp_path, source, batch, transform="", annotated=""):
    (tmp_path / "data.prototxt").write_text(f"""
layer {{ name: "data" type: "AnnotatedData" top: "data" top: "label"
  transform_param {{ {transform} }}
  data_param {{ source: "{source}" batch_size: {batch} }}
  annotated_data_param {{ {annotated} label_map_file: "unused.prototxt" }} }}""")
    return Net(str(tmp_path / "data.prototxt"), phase="TRAIN")


def _row(item, label, inst, box, difficult):
    return [item, label, inst] + list(np.float32(box)) + [float(difficult)]


def test_annotated_data_label_rows_and_pixels(tmp_path):
    imgs = _images()
    src = _db(tmp_path / "db", [annotated_datum(array_to_datum(imgs[0]), REC0),
                                annotated_datum(array_to_datum(imgs[1]), []),
                                annotated_datum(array_to_datum(imgs[2]), REC2)])
    net = _data_net(tmp_path, src, 2, "scale: 0.5 mean_value: 10 mean_value: 20 mean_value: 30")
    assert net.blob_shapes["data"] == (2, 3, 4, 6) and net.blob_shapes["label"] == (1, 1, 3, 8)
    mean = np.array([10, 20, 30], np.float32)[:, None, None]
    net()
    np.testing.assert_array_equal(net.blobs["data"].numpy(), np.stack([(imgs[0] - mean) * .5, (imgs[1] - mean) * .5]))
    rec0 = [_row(0, 1, 0, BOX_A, 0), _row(0, 1, 1, BOX_B, 1), _row(0, 2, 0, BOX_C, 0)]
    np.testing.assert_array_equal(net.blobs["label"].numpy().reshape(-1, 8), rec0)
    net()                                          # records 2, 0 (reading wraps around)
    expected = [_row(0, 3, 5, BOX_D, 0)] + [[1] + r[1:] for r in rec0]
    np.testing.assert_array_equal(net.blobs["label"].numpy().reshape(-1, 8), expected)
    np.testing.assert_array_equal(net.blobs["data"].numpy()[0], (imgs[2] - mean) * .5)


def test_annotated_data_without_boxes_gives_the_minus_one_row(tmp_path):
    src = _db(tmp_path / "db", [annotated_datum(array_to_datum(_images()[1]), [])])
    net = _data_net(tmp_path, src, 1)
    net()
    np.testing.assert_array_equal(net.blobs["label"].numpy(), -np.ones((1, 1, 1, 8)))


def test_annotated_data_mirror_flips_the_boxes(tmp_path):
    img = _images()[0]
    src = _db(tmp_path / "db", [annotated_datum(array_to_datum(img), REC0)])
    net = _data_net(tmp_path, src, 1, "mirror: true")
    net.layer("data").seed = 7
    seen = set()
    for _ in range(12):
        net()
        data, rows = net.blobs["data"].numpy()[0], net.blobs["label"].numpy().reshape(-1, 8)
        flipped = bool(np.array_equal(data, img[:, :, ::-1]))
        assert flipped or np.array_equal(data, img)
        for row, (_, box) in zip(rows, [(0, BOX_A), (1, BOX_B), (2, BOX_C)]):
            b = np.float32(box)
            want = [np.float32(1) - b[2], b[1], np.float32(1) - b[0], b[3]] if flipped else list(b)
            np.testing.assert_array_equal(row[3:7], want)
        seen.add(flipped)
    assert seen == {True, False}


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_batch_sampling_keeps_boxes_meeting_the_constraints(tmp_path):
    """One sampler of fixed scale .5 and aspect 1 (a .5 x .5 window at a random place) with
    min_jaccard_overlap .1, emit_constraint CENTER: each crop overlaps some box by >= .1, and the label
    rows are exactly the boxes whose centre lies in the crop, projected into it and clipped."""
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    boxes = [(1, [.05, .05, .3, .3]), (2, [.6, .1, .95, .45]), (1, [.2, .6, .7, .95])]
    groups = [(label, [(k, box, False)]) for k, (label, box) in enumerate(boxes)]
    src = _db(tmp_path / "db", [annotated_datum(encoded_datum(encode_hwc(img, "png")), groups)])
    net = _data_net(tmp_path, src, 1, "resize_param { height: 20 width: 30 resize_mode: WARP } "
                    "emit_constraint { emit_type: CENTER }",
                    "batch_sampler { sampler { min_scale: 0.5 max_scale: 0.5 } "
                    "sample_constraint { min_jaccard_overlap: 0.1 } max_sample: 1 max_trials: 50 }")
    layer = net.layer("data")
    layer.seed = 11
    kept = set()
    for _ in range(10):
        net()
        crop = layer.last_crops[0]
        assert crop is not None
        crop = crop.astype(np.float64)
        np.testing.assert_allclose([crop[2] - crop[0], crop[3] - crop[1]], [.5, .5], atol=1e-6)
        assert 0 <= crop[0] and crop[2] <= 1 + 1e-6 and 0 <= crop[1] and crop[3] <= 1 + 1e-6
        assert max(_iou(crop, b) for _, b in boxes) >= .1
        want = []
        for k, (label, b) in enumerate(boxes):
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            if crop[0] <= cx <= crop[2] and crop[1] <= cy <= crop[3]:
                p = np.clip([(b[0] - crop[0]) / .5, (b[1] - crop[1]) / .5, (b[2] - crop[0]) / .5,
                             (b[3] - crop[1]) / .5], 0, 1)
                want.append([0, label, k] + list(p) + [0])
        rows = net.blobs["label"].numpy().reshape(-1, 8)
        if not want:
            want = [[-1] * 8]
        np.testing.assert_allclose(rows, want, atol=2e-6)
        kept.add(tuple(int(r[2]) for r in want))
    assert len(kept) > 1 and all(len(k) < len(boxes) for k in kept)   # crops keep different boxes, never all


# -- the corpus train nets -------------------------------------------------------------------------
MOBILENET_SSD_TRAIN = "chuanqi305__MobileNet-SSD/train.prototxt"
VGG_SSD_TRAIN = "xzgz__caffe-ssd/models__VGGNet__VOC0712__SSD_300x300__train.prototxt"


def _detection_set(tmp_path, n=8, size=64, seed=0):
    """A seeded toy detection set: plain images with 1-2 red (label 1) or green (label 2) squares,
    PNG-encoded AnnotatedDatum records, and its label map."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        img = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
        groups = []
        for j in range(int(rng.integers(1, 3))):
            x, y = (int(v) for v in rng.integers(0, size // 2, 2))
            s, label = int(rng.integers(size // 4, size // 2)), int(rng.integers(1, 3))
            img[y:y + s, x:x + s] = (0, 0, 255) if label == 1 else (0, 255, 0)
            groups.append((label, [(j, (x / size, y / size, (x + s) / size, (y + s) / size), False)]))
        records.append(annotated_datum(encoded_datum(encode_hwc(img, "png")), groups))
    lm = label_map([("background", 0, "background"), ("red", 1, "red"), ("green", 2, "green")])
    (tmp_path / "labelmap.prototxt").write_text(text_format.MessageToString(lm))
    return _db(tmp_path / "train_lmdb", records)


def _train_net(tmp_path, local, source, size, batch, thin=1):
    """The corpus train net reading ``source`` with the toy label map, resized to size x size, batch
    ``batch``, with convolution outputs of 100 or more (not the mbox heads) divided by ``thin``."""
    net = io.read_net(corpus_file(local))
    data = net.layer[0]
    assert data.type == "AnnotatedData"
    data.data_param.source, data.data_param.batch_size = source, batch
    for lp in net.layer:
        p = lp.convolution_param
        if thin > 1 and lp.type == "Convolution" and "mbox" not in lp.name and p.num_output >= 100:
            if p.group == p.num_output:
                p.group //= thin
            p.num_output //= thin
    text = printer.message_to_text(net)
    text = text.replace("height: 300", f"height: {size}").replace("width: 300", f"width: {size}")
    text = re.sub(r'label_map_file: "[^"]*"', f'label_map_file: "{tmp_path}/labelmap.prototxt"', text)
    path = tmp_path / "train.prototxt"
    path.write_text(text)
    return str(path)


@needs_corpus
def test_mobilenet_ssd_train_net_trains(tmp_path):
    """MobileNet-SSD's real train.prototxt (all its augmentation: distortion, expansion, 7 batch
    samplers, mirror) on the toy set, resized to 160 x 160 (full channel widths), batch 2: forward and
    backward reach the heads, and 20 SGD iterations lower the MultiBoxLoss on a fixed batch."""
    from recaffe.solver.solver import Solver
    source = _detection_set(tmp_path)
    net_path = _train_net(tmp_path, MOBILENET_SSD_TRAIN, source, 160, 2)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{net_path}"\nbase_lr: 0.003\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.00005\n'
        "random_seed: 1\nmax_iter: 100\ndisplay: 0\n")
    with one_thread():
        s = Solver(str(tmp_path / "solver.prototxt"))
        assert s.net.layer_types.count("MultiBoxLoss") == 1 and s.net.layer_types[0] == "AnnotatedData"
        data = s.net.layer("data")

        def fixed_batch_loss():
            data.seed, data._rng, data._pos = 5, None, 0
            s.net()
            return s.net.loss.item()
        before = fixed_batch_loss()
        s.net.backward()
        for head in ("conv0", "conv11_mbox_loc", "conv11_mbox_conf", "conv13_mbox_conf"):
            assert s.net.params[head][0].grad is not None and s.net.params[head][0].grad.abs().sum() > 0
        for p, *_ in s.net.learnable_params():
            p.grad = None
        losses = []
        for _ in range(20):
            s.step(1)
            losses.append(s.net.loss.item())
        after = fixed_batch_loss()
    assert np.isfinite(losses).all()
    assert after < 0.8 * before, (before, after, losses)


@needs_corpus
def test_vgg_ssd_train_net_builds_and_runs(tmp_path):
    """VGG-SSD's train.prototxt at its 300 x 300 (its pad-0 extra layers need it) with the channels
    of the trunk divided by 8, batch 1: builds, one forward gives a finite loss, backward reaches
    conv4_3's Normalize scale."""
    source = _detection_set(tmp_path, n=2)
    with one_thread():
        torch.manual_seed(0)
        net = Net(_train_net(tmp_path, VGG_SSD_TRAIN, source, 300, 1, thin=8), phase="TRAIN")
        assert net.blob_shapes["mbox_priorbox"] == (1, 2, 8732 * 4)
        net()
        assert np.isfinite(net.loss.item()) and net.loss.item() > 0
        net.backward()
    assert net.params["conv4_3_norm"][0].grad.abs().sum() > 0


def test_annotated_data_bad_inputs_name_the_layer(tmp_path):
    src = _db(tmp_path / "db", [annotated_datum(array_to_datum(_images()[0]), REC0)])
    with pytest.raises(NetError, match="layer 'data'.*FIT_SMALL_SIZE is not supported; valid: WARP"):
        _data_net(tmp_path, src, 1, "resize_param { height: 2 width: 3 resize_mode: FIT_SMALL_SIZE }")
    # a raw record cropped by batch sampling no longer fits the data top (the fork does not resize raw data)
    net = _data_net(tmp_path, src, 1, "", "batch_sampler { sampler { min_scale: 0.5 max_scale: 0.5 } max_trials: 1 }")
    with pytest.raises(DataError, match="layer 'data'.*does not fit the data top 3x4x6"):
        net()
    (tmp_path / "junk").mkdir()
    with LMDBWriter(str(tmp_path / "junk" / "db")) as w:
        w.put(b"0", b"\xff\xff\xff")
    with pytest.raises(DataError, match="record 0: not a serialized AnnotatedDatum"):
        _data_net(tmp_path, str(tmp_path / "junk" / "db"), 1)
