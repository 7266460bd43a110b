"""SSD fork layers (netspec/net/layers/ssd.py, ssd_detection.py): forward against OpenCV DNN on the
same prototxt (no Caffe here runs the SSD fork); where OpenCV lacks a feature or departs from the fork,
against closed forms from the fork's source (each test says which). Gradients by gradcheck."""
import numpy as np
import pytest
import torch

from fork_oracle import gradcheck_layer, input_layer, make_layer, run_both
from recaffe.protos.errors import NetError

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 6, 5, 7)).astype(np.float32)


def _one(tmp_path, layer, inputs, top="y"):
    text = "".join(input_layer(k, v.shape) for k, v in inputs.items()) + "layer { %s }\n" % layer
    _, out = run_both(text, tmp_path, inputs, [top])
    return out[top]


# -- Normalize -------------------------------------------------------------------------------------------
NORM = ('name: "y" type: "Normalize" bottom: "x" top: "y" norm_param { across_spatial: %s channel_shared: %s '
        'scale_filler { type: "gaussian" std: 3 } }')


@pytest.mark.parametrize("across, shared", [("true", "true"), ("false", "true"), ("false", "false")])
def test_normalize_matches_opencv(tmp_path, across, shared):
    """(OpenCV refuses per-channel scales with across_spatial; the closed form below covers them.)"""
    ours, cv = _one(tmp_path, NORM % (across, shared), {"x": X})
    np.testing.assert_allclose(ours, cv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("across", ["true", "false"])
@pytest.mark.parametrize("shared", ["true", "false"])
def test_normalize_closed_form_and_gradient(across, shared):
    layer = make_layer(NORM % (across, shared), [X.shape])
    assert tuple(layer.blobs[0].shape) == ((1,) if shared == "true" else (6,))
    x = torch.from_numpy(X).double()
    scale = layer.blobs[0].detach().double().view((1, -1, 1, 1) if shared == "false" else (1,))
    dims = (1, 2, 3) if across == "true" else (1,)
    want = x / torch.sqrt((x * x).sum(dims, keepdim=True) + 1e-10) * scale
    np.testing.assert_allclose(layer.double()(x)[0].detach().numpy(), want.numpy(), rtol=1e-12)
    assert gradcheck_layer(layer, [X])


def test_normalize_default_scale_is_one():
    layer = make_layer('name: "y" type: "Normalize" bottom: "x" top: "y"', [X.shape])
    assert layer.blobs[0].tolist() == [1.0]


# -- Permute, Flatten as SSD uses them --------------------------------------------------------------------
@pytest.mark.parametrize("order", [(0, 2, 3, 1), (0, 3, 1, 2), (1, 0, 3, 2), (0, 1, 2, 3)])
def test_permute_matches_opencv(tmp_path, order):
    orders = " ".join(f"order: {a}" for a in order)
    text = 'name: "y" type: "Permute" bottom: "x" top: "y" permute_param { %s }' % orders
    ours, cv = _one(tmp_path, text, {"x": X})
    assert ours.shape == cv.shape == tuple(X.shape[a] for a in order) + X.shape[len(order):]
    np.testing.assert_array_equal(ours, cv)


def test_permute_partial_order_keeps_the_rest():
    """permute_layer.cpp: axes missing from ``order`` follow in their order (OpenCV wants all axes)."""
    layer = make_layer('name: "y" type: "Permute" bottom: "x" top: "y" permute_param { order: 2 order: 0 }', [X.shape])
    np.testing.assert_array_equal(layer(torch.from_numpy(X))[0].numpy(), X.transpose(2, 0, 1, 3))


def test_permute_gradient_and_errors():
    layer = make_layer('name: "y" type: "Permute" bottom: "x" top: "y" '
                       'permute_param { order: 0 order: 2 order: 3 order: 1 }', [(2, 3, 2, 2)])
    assert gradcheck_layer(layer, [RNG.standard_normal((2, 3, 2, 2))])
    with pytest.raises(NetError, match=r"layer 'y' \(Permute\): order 1 is repeated"):
        make_layer('name: "y" type: "Permute" bottom: "x" top: "y" permute_param { order: 1 order: 1 }', [(2, 3)])
    with pytest.raises(NetError, match=r"order 4 is out of range for a 4-axis bottom"):
        make_layer('name: "y" type: "Permute" bottom: "x" top: "y" permute_param { order: 4 }', [X.shape])


def test_ssd_head_permute_flatten_concat_match_opencv(tmp_path):
    """The mbox pattern of SSD nets: conv output permuted to NHWC, flattened from axis 1, concatenated."""
    a, b = X, RNG.standard_normal((2, 6, 3, 4)).astype(np.float32)
    text = (input_layer("a", a.shape) + input_layer("b", b.shape) +
            'layer { name: "pa" type: "Permute" bottom: "a" top: "pa" '
            'permute_param { order: 0 order: 2 order: 3 order: 1 } }\n'
            'layer { name: "pb" type: "Permute" bottom: "b" top: "pb" '
            'permute_param { order: 0 order: 2 order: 3 order: 1 } }\n'
            'layer { name: "fa" type: "Flatten" bottom: "pa" top: "fa" flatten_param { axis: 1 } }\n'
            'layer { name: "fb" type: "Flatten" bottom: "pb" top: "fb" flatten_param { axis: 1 } }\n'
            'layer { name: "y" type: "Concat" bottom: "fa" bottom: "fb" top: "y" concat_param { axis: 1 } }\n')
    _, out = run_both(text, tmp_path, {"a": a, "b": b}, ["y"])
    ours, cv = out["y"]
    assert ours.shape == (2, 6 * 35 + 6 * 12)
    np.testing.assert_array_equal(ours, cv)


# -- PriorBox -------------------------------------------------------------------------------------------
FEAT, IMG = np.zeros((1, 2, 4, 6), np.float32), np.zeros((1, 3, 40, 60), np.float32)
PRIOR = 'name: "y" type: "PriorBox" bottom: "f" bottom: "img" top: "y" prior_box_param { %s }'


@pytest.mark.parametrize("params", [
    "min_size: 10 max_size: 22 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: false "
    "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2",
    "min_size: 10 max_size: 22 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: true variance: 0.1 offset: 0.3",
    "min_size: 8 min_size: 16 max_size: 12 max_size: 30 aspect_ratio: 2 aspect_ratio: 2 flip: false clip: false "
    "variance: 0.2",
    "min_size: 10 aspect_ratio: 0.5 flip: true clip: false step: 9 variance: 0.1",
    "min_size: 12 clip: false step_h: 7 step_w: 11 offset: 0 variance: 0.1",
])
def test_priorbox_matches_opencv(tmp_path, params):
    ours, cv = _one(tmp_path, PRIOR % params, {"f": FEAT, "img": IMG})
    assert ours.shape == cv.shape
    np.testing.assert_allclose(ours, cv, atol=1e-6)


def test_priorbox_count_and_order():
    """1 + (max) + flipped ratios per min_size, per cell in row-major order (prior_box_layer.cpp)."""
    layer = make_layer(PRIOR % "min_size: 10 max_size: 22 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: false",
                       [FEAT.shape, IMG.shape])
    assert layer.num_priors == 6 and layer.top_shapes == [(1, 2, 4 * 6 * 6 * 4)]
    top = layer(torch.from_numpy(FEAT), torch.from_numpy(IMG))[0][0]
    boxes = top[0].view(4, 6, 6, 4).double()
    w = (boxes[..., 2] - boxes[..., 0]) * 60
    h = (boxes[..., 3] - boxes[..., 1]) * 40
    side = [10, 22 ** 0.5 * 10 ** 0.5, 10 * 2 ** 0.5, 10 / 2 ** 0.5, 10 * 3 ** 0.5, 10 / 3 ** 0.5]
    np.testing.assert_allclose(w[0, 0].numpy(), side, rtol=1e-5)
    np.testing.assert_allclose(h[0, 0].numpy(), [side[0], side[1], side[3], side[2], side[5], side[4]], rtol=1e-5)
    cx = (boxes[..., 0] + boxes[..., 2]) / 2 * 60
    np.testing.assert_allclose(cx[1, 2, 0].item(), 2.5 * 10, rtol=1e-6)
    assert torch.all(top[1] == torch.tensor(0.1))     # the default variance


def test_priorbox_img_size_and_int_min_size_closed_form():
    """Cases OpenCV departs from the fork (it ignores img_size/img_h/img_w and keeps a fractional
    min_size): the fork takes the image size from img_h/img_w and truncates min_size to an int."""
    layer = make_layer(PRIOR % "min_size: 10.7 aspect_ratio: 2 flip: false clip: false img_h: 50 img_w: 70 "
                               "variance: 0.1", [FEAT.shape, IMG.shape])
    top = layer(torch.from_numpy(FEAT), torch.from_numpy(IMG))[0][0, 0].view(4, 6, 2, 4).double()
    step_w, step_h = np.float32(70) / np.float32(6), np.float32(50) / np.float32(4)
    cx, cy = float(np.float32(1.5) * step_w), float(np.float32(2.5) * step_h)    # cell (2, 1)
    want = [(cx - 5) / 70, (cy - 5) / 50, (cx + 5) / 70, (cy + 5) / 50]       # min_size int(10.7) = 10
    np.testing.assert_allclose(top[2, 1, 0].numpy(), want, rtol=1e-6)
    bw, bh = np.float32(10 * np.sqrt(np.float32(2))), np.float32(10 / np.sqrt(np.float32(2)))
    want = [(cx - bw / 2) / 70, (cy - bh / 2) / 50, (cx + bw / 2) / 70, (cy + bh / 2) / 50]
    np.testing.assert_allclose(top[2, 1, 1].numpy(), want, rtol=1e-6)
    same = make_layer(PRIOR % "min_size: 10 img_size: 50 variance: 0.1", [FEAT.shape, IMG.shape])
    assert same(torch.from_numpy(FEAT), torch.from_numpy(IMG))[0][0, 0, 2].item() == pytest.approx(
        (np.float32(0.5) * np.float32(50 / 6) + 5) / 50, rel=1e-6)


def test_priorbox_errors():
    with pytest.raises(NetError, match="max_size needs one value per min_size"):
        make_layer(PRIOR % "min_size: 10 max_size: 5", [FEAT.shape, IMG.shape])
    with pytest.raises(NetError, match="variance takes 1 or 4 positive values"):
        make_layer(PRIOR % "min_size: 10 variance: 0.1 variance: 0.2", [FEAT.shape, IMG.shape])
    with pytest.raises(NetError, match="give either step or step_h/step_w"):
        make_layer(PRIOR % "min_size: 10 step: 8 step_h: 4", [FEAT.shape, IMG.shape])


# -- DetectionOutput ---------------------------------------------------------------------------------------
P, C = 40, 4


def _det_inputs(share, seed, variance_channel=True):
    r = np.random.default_rng(seed)
    cx, cy, w, h = r.uniform(0.1, 0.9, P), r.uniform(0.1, 0.9, P), r.uniform(0.05, 0.4, P), r.uniform(0.05, 0.4, P)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).reshape(-1)
    var = np.tile([0.1, 0.1, 0.2, 0.2], P)
    prior = np.stack([boxes, var] if variance_channel else [boxes])[None].astype(np.float32)
    loc = (r.standard_normal((2, P * 4 * (1 if share else C))) * 0.5).astype(np.float32)
    logits = r.standard_normal((2, P, C)) * 2
    conf = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).reshape(2, -1).astype(np.float32)
    return {"loc": loc, "conf": conf, "prior": prior}


DET = ('name: "y" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" top: "y" '
       'detection_output_param { num_classes: 4 share_location: %s %s }')


def _by_score(rows):
    """OpenCV re-sorts each image's rows by score (its group_by_classes false); the fork groups them by
    label. Our rows in OpenCV's order: image, then score descending (stable)."""
    return rows[np.lexsort((np.arange(len(rows)), -rows[:, 2], rows[:, 0]))]


@pytest.mark.parametrize("share, params, seed", [
    ("true", "nms_param { nms_threshold: 0.45 } code_type: CENTER_SIZE keep_top_k: 20 confidence_threshold: 0.05", 0),
    ("true", "nms_param { nms_threshold: 0.3 top_k: 10 } code_type: CORNER confidence_threshold: 0.1", 1),
    ("false", "nms_param { nms_threshold: 0.5 } code_type: CENTER_SIZE background_label_id: -1 keep_top_k: 7", 2),
    ("false", "nms_param { nms_threshold: 0.6 top_k: 5 } code_type: CORNER keep_top_k: 8", 4),
    ("false", "nms_param { nms_threshold: 0.5 } code_type: CENTER_SIZE variance_encoded_in_target: true", 5),
    ("true", "nms_param { nms_threshold: 0.5 } code_type: CORNER variance_encoded_in_target: true keep_top_k: 15", 3),
])
def test_detection_output_matches_opencv(tmp_path, share, params, seed):
    inputs = _det_inputs(share == "true", seed, variance_channel="variance_encoded" not in params)
    for field, default in (("background_label_id", "0"), ("keep_top_k", "10000")):
        if field not in params:     # OpenCV requires them; 10000 keeps everything
            params += f" {field}: {default}"
    ours, cv = _one(tmp_path, DET % (share, params), inputs)
    rows, k = ours[0, 0], ours.shape[2]
    assert k > 2 and cv.shape[2] >= k and not cv[0, 0, k:].any()       # OpenCV pads with zero rows
    np.testing.assert_allclose(_by_score(rows), cv[0, 0, :k], atol=1e-5)
    # the fork's own order: per image, labels ascending, scores descending within a label
    key = rows[:, 0] * 1e3 + rows[:, 1]
    assert np.all(np.diff(key) >= 0)
    same = np.diff(key) == 0
    assert np.all(np.diff(rows[:, 2])[same] <= 0)


def test_detection_output_keeps_best_overall_and_no_detection_rows():
    inputs = {k: torch.from_numpy(v) for k, v in _det_inputs(True, 0).items()}
    shapes = [v.shape for v in inputs.values()]
    layer = make_layer(DET % ("true", "nms_param { nms_threshold: 1.0 } keep_top_k: 5"), shapes)
    rows = layer(*inputs.values())[0][0, 0]
    conf = inputs["conf"].view(2, P, C)[..., 1:]     # nms 1.0 keeps every box: the 5 best scores win
    for i in range(2):
        best = torch.sort(conf[i].reshape(-1), descending=True).values[:5]
        got = rows[rows[:, 0] == i][:, 2]
        np.testing.assert_allclose(torch.sort(got, descending=True).values.numpy(), best.numpy())
    # no score above the threshold: one row per image, [i, -1, -1, -1, -1, -1, -1] (the fork's rule;
    # OpenCV writes zeros)
    none = make_layer(DET % ("true", "nms_param { nms_threshold: 0.5 } confidence_threshold: 0.9999"), shapes)
    out = none(*inputs.values())[0]
    assert out.tolist() == [[[[0.0] + [-1.0] * 6, [1.0] + [-1.0] * 6]]]


def test_detection_output_corner_size_and_adaptive_nms_closed_form():
    """CORNER_SIZE and eta < 1 (OpenCV has neither): bbox_util.cpp DecodeBBox / ApplyNMSFast."""
    from recaffe.netspec.net.layers.ssd_detection import CORNER_SIZE, decode_boxes, nms_fast
    prior = torch.tensor([[0.2, 0.2, 0.6, 0.4]])
    var = torch.tensor([[0.1, 0.1, 0.2, 0.2]])
    loc = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    got = decode_boxes(prior, var, loc, CORNER_SIZE, False)
    np.testing.assert_allclose(got, [[0.2 + 0.1 * 1 * 0.4, 0.2 - 0.1 * 2 * 0.2, 0.6 + 0.2 * 0.5 * 0.4,
                                              0.4 + 0.2 * 3 * 0.2]], rtol=1e-6)
    # three boxes: b overlaps a by IoU 0.6, c overlaps a by 0.25 and b by 0.4
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.6], [0.0, 0.0, 0.25, 1.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms_fast(boxes, scores, 0.0, 0.7, 1.0, -1) == [0, 1, 2]
    assert nms_fast(boxes, scores, 0.0, 0.55, 1.0, -1) == [0, 2]
    # eta 0.5: after keeping box 0 the threshold drops from 0.7 to 0.35, so box 1 (0.6) goes
    assert nms_fast(boxes, scores, 0.0, 0.7, 0.5, -1) == [0, 2]
    assert nms_fast(boxes, scores, 0.75, 0.7, 1.0, -1) == [0, 1]      # score > threshold only
    assert nms_fast(boxes, scores, 0.0, 0.7, 1.0, 2) == [0, 1]        # top_k before NMS


def test_detection_output_shape_errors():
    with pytest.raises(NetError, match=r"location bottom \(2, 12\) does not hold 40 priors"):
        make_layer(DET % ("true", ""), [(2, 12), (2, P * C), (1, 2, P * 4)])
    with pytest.raises(NetError, match="background_label_id -1 with share_location"):
        make_layer(DET % ("true", "background_label_id: -1"), [(2, P * 4), (2, P * C), (1, 2, P * 4)])
    with pytest.raises(NetError, match="needs num_classes"):
        make_layer('name: "y" type: "DetectionOutput" bottom: "a" bottom: "b" bottom: "c" top: "y"',
                   [(2, P * 4), (2, P * C), (1, 2, P * 4)])
