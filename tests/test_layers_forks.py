"""Fork layers other than SSD's: ConvolutionDepthwise and ShuffleChannel (mobile nets), Axpy (SENet),
BN and Upsample (SegNet), Interp (PSPNet), ROIPooling and SmoothL1Loss (Fast/Faster R-CNN).

Forward against OpenCV DNN where it implements the layer (ConvolutionDepthwise, ShuffleChannel, Interp,
ROIPooling), else against closed forms written from the fork's source (each test names it); gradients
by gradcheck, and against the fork's own backward where it is not the mathematical gradient."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fork_oracle import gradcheck_layer, input_layer, make_layer, opencv_forward, run_both
from recaffe.netspec.net.net import Net
from recaffe.protos.errors import NetError

RNG = np.random.default_rng(11)
X = RNG.standard_normal((2, 6, 5, 7)).astype(np.float32)


def _one(tmp_path, layer, inputs, top="y"):
    text = "".join(input_layer(k, v.shape) for k, v in inputs.items()) + "layer { %s }\n" % layer
    _, out = run_both(text, tmp_path, inputs, [top])
    return out[top]


# -- ConvolutionDepthwise ---------------------------------------------------------------------------------
DW = 'name: "y" type: "ConvolutionDepthwise" bottom: "x" top: "y" convolution_param { %s }'


@pytest.mark.parametrize("params", ["num_output: 6 group: 6 kernel_size: 3 pad: 1 stride: 2",
                                    "num_output: 6 kernel_size: 3 pad: 2 dilation: 2 bias_term: false",
                                    "num_output: 6 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 2"])
def test_depthwise_matches_opencv(tmp_path, params):
    ours, cv = _one(tmp_path, DW % params, {"x": X})
    assert ours.shape == cv.shape and ours.shape[1] == 6
    np.testing.assert_allclose(ours, cv, rtol=1e-5, atol=1e-5)


def test_depthwise_is_grouped_convolution_and_trains():
    layer = make_layer(DW % "kernel_size: 3 pad: 1 weight_filler { type: 'gaussian' } bias_filler { type: 'gaussian' }",
                       [X.shape])
    w, b = layer.blobs
    assert tuple(w.shape) == (6, 1, 3, 3) and tuple(b.shape) == (6,)       # conv_dw_layer.cpp's blobs
    want = F.conv2d(torch.from_numpy(X), w.detach(), b.detach(), padding=1, groups=6)
    np.testing.assert_allclose(layer(torch.from_numpy(X))[0].detach().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    small = make_layer(DW % "kernel_size: 3 pad: 1 stride: 2 weight_filler { type: 'gaussian' }", [(1, 6, 4, 4)])
    assert gradcheck_layer(small, [RNG.standard_normal((1, 6, 4, 4))])
    with pytest.raises(NetError, match=r"layer 'y' \(ConvolutionDepthwise\): num_output 12 must equal the bottom's 6"):
        make_layer(DW % "num_output: 12 kernel_size: 3", [X.shape])


# -- ShuffleChannel ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("group", [2, 3, 6])
def test_shuffle_channel_matches_opencv_and_rule(tmp_path, group):
    ours, cv = _one(tmp_path, 'name: "y" type: "ShuffleChannel" bottom: "x" top: "y" shuffle_channel_param '
                              '{ group: %d }' % group, {"x": X})
    np.testing.assert_array_equal(ours, cv)
    per = 6 // group
    for i in range(group):                 # top channel j*group + i is bottom channel i*(C/group) + j
        for j in range(per):
            np.testing.assert_array_equal(ours[:, j * group + i], X[:, i * per + j])


def test_shuffle_channel_gradient_and_errors():
    layer = make_layer('name: "y" type: "ShuffleChannel" bottom: "x" top: "y" shuffle_channel_param { group: 2 }',
                       [(1, 4, 2, 3)])
    assert gradcheck_layer(layer, [RNG.standard_normal((1, 4, 2, 3))])
    with pytest.raises(NetError, match="group 4 must be > 0 and divide the channels"):
        make_layer('name: "y" type: "ShuffleChannel" bottom: "x" top: "y" shuffle_channel_param { group: 4 }',
                   [X.shape])


# -- Axpy ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ashape", [(2, 6), (2, 6, 1, 1)])
def test_axpy_closed_form_and_gradient(ashape):
    """axpy_layer.cpp: top = a * x + y per (n, c); da = sum over positions of x * dtop."""
    a, y = RNG.standard_normal(ashape), RNG.standard_normal(X.shape)
    axpy = 'name: "z" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "z"'
    layer = make_layer(axpy, [ashape, X.shape, X.shape])
    got = layer(*[torch.from_numpy(np.asarray(v, np.float64)) for v in (a, X, y)])[0]
    np.testing.assert_allclose(got.numpy(), a.reshape(2, 6, 1, 1) * X + y, rtol=1e-12)
    assert gradcheck_layer(layer, [a, X, y])
    with pytest.raises(NetError, match="bottom 0 \\(the scale\\) must be \\(N, C\\) or \\(N, C, 1, 1\\)"):
        make_layer(axpy, [(2, 6, 2, 1), X.shape, X.shape])


# -- SegNet BN -----------------------------------------------------------------------------------------------
BN = ('name: "y" type: "BN" bottom: "x" %s bn_param { %s scale_filler { type: "gaussian" } '
      'shift_filler { type: "gaussian" } }')


def test_segnet_bn_learn_closed_form_and_stat_tops():
    layer = make_layer(BN % ('top: "y" top: "m" top: "v"', ""), [X.shape])
    scale, shift = (b.detach().double() for b in layer.blobs)
    assert tuple(scale.shape) == (1, 6, 1, 1)
    y, m, v = layer.double()(torch.from_numpy(X).double())
    x = X.astype(np.float64)
    mean = x.mean((0, 2, 3)).reshape(1, 6, 1, 1)
    var = (x * x).mean((0, 2, 3)).reshape(1, 6, 1, 1) - mean ** 2        # E(x^2) - (Ex)^2, biased
    np.testing.assert_allclose(y.detach().numpy(), (x - mean) / np.sqrt(var + 1e-9) * scale.numpy() + shift.numpy(),
                               rtol=1e-9)
    np.testing.assert_allclose(m.numpy(), mean, rtol=1e-9)
    np.testing.assert_allclose(v.numpy(), var, rtol=1e-9)
    assert not m.requires_grad and not v.requires_grad


def test_segnet_bn_learn_gradient_is_the_forks():
    """bn_layer.cpp Backward_cpu (LEARN), written out: g = scale * dy,
    dx = (g - mean(g) - x_norm * mean(g * x_norm)) / sqrt(var + eps); dscale = sum(dy * x_norm); dshift = sum(dy)."""
    layer = make_layer(BN % ('top: "y"', ""), [X.shape]).double()
    x = torch.from_numpy(X).double().requires_grad_(True)
    dy = torch.from_numpy(RNG.standard_normal(X.shape))
    layer(x)[0].backward(dy)
    xs, dys = x.detach().numpy(), dy.numpy()
    mean = xs.mean((0, 2, 3), keepdims=True)
    std = np.sqrt((xs * xs).mean((0, 2, 3), keepdims=True) - mean ** 2 + 1e-9)
    xn = (xs - mean) / std
    g = layer.blobs[0].detach().numpy() * dys
    want = (g - g.mean((0, 2, 3), keepdims=True) - xn * (g * xn).mean((0, 2, 3), keepdims=True)) / std
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(layer.blobs[0].grad.numpy().ravel(), (dys * xn).sum((0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(layer.blobs[1].grad.numpy().ravel(), dys.sum((0, 2, 3)), rtol=1e-9)
    assert gradcheck_layer(make_layer(BN % ('top: "y"', ""), [(3, 2, 2, 3)]), [RNG.standard_normal((3, 2, 2, 3))])


def test_segnet_bn_inference_is_scale_and_shift():
    layer = make_layer(BN % ('top: "y"', "bn_mode: INFERENCE"), [X.shape])
    s, b = (p.detach().numpy() for p in layer.blobs)
    np.testing.assert_allclose(layer(torch.from_numpy(X))[0].detach().numpy(), X * s + b, rtol=1e-6)
    assert gradcheck_layer(layer, [X[:1, :, :2]])
    with pytest.raises(NetError, match="batch mean and variance tops exist in bn_mode LEARN only"):
        make_layer(BN % ('top: "y" top: "m"', "bn_mode: INFERENCE"), [X.shape])


# -- SegNet Upsample ------------------------------------------------------------------------------------------
UP = 'name: "u" type: "Upsample" bottom: "p" bottom: "mask" top: "u" upsample_param { %s }'


def _pool_with_mask(x):
    net = Net('layer { name: "x" type: "Input" top: "x" input_param { shape { %s } } }\n'
              'layer { name: "p" type: "Pooling" bottom: "x" top: "p" top: "mask" pooling_param { pool: MAX '
              'kernel_size: 2 stride: 2 } }\n' % " ".join(f"dim: {d}" for d in x.shape))
    net(x=torch.from_numpy(x))
    return net.blobs["p"], net.blobs["mask"]


@pytest.mark.parametrize("params, size", [("scale: 2", (10, 14)), ("scale: 2 upsample_h: 9 upsample_w: 13", (9, 13)),
                                          ("scale: 2 pad_out_h: true", (9, 14))])
def test_upsample_unpools_caffes_pooling_mask(params, size):
    """Max-unpooling with the mask of a Caffe MAX Pooling top: equal to torch's max_unpool2d."""
    x = RNG.standard_normal((2, 3, *size)).astype(np.float32)
    pooled, mask = _pool_with_mask(x)
    layer = make_layer(UP % params, [tuple(pooled.shape)] * 2)
    got = layer(pooled, mask)[0]
    want = F.max_unpool2d(pooled, mask.long(), 2, 2, output_size=size)
    assert tuple(got.shape) == (2, 3) + size
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_upsample_last_writer_wins_and_forks_backward():
    """upsample_layer.cpp: top[mask[i]] = bottom[i] in order (later cells overwrite); backward
    bottom_diff[i] = top_diff[mask[i]] for every i, including the overwritten ones."""
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
    mask = torch.tensor([[[[5.0, 0.0], [5.0, 15.0]]]])
    layer = make_layer(UP % "scale: 2", [(1, 1, 2, 2)] * 2)
    top = layer(x, mask)[0]
    want = torch.zeros(16)
    want[0], want[5], want[15] = 2.0, 3.0, 4.0
    assert top.view(-1).tolist() == want.tolist()
    top.backward(torch.arange(16.0).view(1, 1, 4, 4))
    assert x.grad.view(-1).tolist() == [5.0, 0.0, 5.0, 15.0]
    assert gradcheck_layer(layer, [x.detach(), torch.tensor([[[[5.0, 0.0], [6.0, 15.0]]]])], grad_inputs=[0])


def test_upsample_errors():
    with pytest.raises(NetError, match="mask index 16 out of range for a 4 x 4 top"):
        layer = make_layer(UP % "scale: 2", [(1, 1, 2, 2)] * 2)
        layer(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 16.0))
    with pytest.raises(NetError, match="pad_out_h / pad_out_w need scale 2"):
        make_layer(UP % "scale: 3 pad_out_h: true", [(1, 1, 2, 2)] * 2)
    with pytest.raises(NetError, match="data and mask bottoms of one shape"):
        make_layer(UP % "scale: 2", [(1, 1, 2, 2), (1, 1, 2, 3)])


# -- PSPNet Interp ----------------------------------------------------------------------------------------------
INTERP = 'name: "y" type: "Interp" bottom: "x" top: "y" interp_param { %s }'


@pytest.mark.parametrize("params", ["zoom_factor: 3", "zoom_factor: 8", "height: 9 width: 4", "height: 64 width: 33",
                                    "height: 3 width: 3", "height: 1 width: 5"])
def test_interp_matches_opencv(tmp_path, params):
    ours, cv = _one(tmp_path, INTERP % params, {"x": X})
    assert ours.shape == cv.shape
    np.testing.assert_allclose(ours, cv, rtol=1e-5, atol=1e-5)


def test_interp_size_rules_closed_form(tmp_path):
    """interp_layer.cpp Reshape: zoom z gives s + (s-1)(z-1), shrink f gives (s-1)/f + 1, a second
    bottom gives its size; pad_beg/pad_end crop first. OpenCV fails on shrink_factor and a second
    bottom and ignores the padding, so the interpolation itself is checked against OpenCV run on the
    cropped input with an explicit size."""
    cases = [("shrink_factor: 2", X, [(5 - 1) // 2 + 1, (7 - 1) // 2 + 1], X),
             ("zoom_factor: 2 pad_beg: -1 pad_end: -1", X, [3 + 2, 5 + 4], X[:, :, 1:4, 1:6]),
             ("height: 8 width: 3 pad_beg: -1", X, [8, 3], X[:, :, 1:, 1:])]
    for params, x, size, cropped in cases:
        layer = make_layer(INTERP % params, [x.shape])
        ours = layer(torch.from_numpy(x))[0].numpy()
        assert list(ours.shape[2:]) == size
        cv = opencv_forward(_write(tmp_path, INTERP % f"height: {size[0]} width: {size[1]}", cropped.shape), None,
                            {"x": np.ascontiguousarray(cropped)}, "y")
        np.testing.assert_allclose(ours, cv, rtol=1e-5, atol=1e-5)
    two = make_layer('name: "y" type: "Interp" bottom: "x" bottom: "r" top: "y"', [X.shape, (2, 1, 8, 3)])
    assert two.top_shapes == [(2, 6, 8, 3)]
    np.testing.assert_allclose(two(torch.from_numpy(X), torch.zeros(2, 1, 8, 3))[0].numpy(),
                               make_layer(INTERP % "height: 8 width: 3", [X.shape])(torch.from_numpy(X))[0].numpy())


def _write(tmp_path, layer, shape):
    p = tmp_path / "interp.prototxt"
    p.write_text(input_layer("x", shape) + "layer { %s }\n" % layer)
    return str(p)


def test_interp_align_corners_float_rule_and_nearest():
    """caffe_cpu_interp2: float r = (in-1)/(out-1), the last source row has no right neighbour; equal
    to torch's align_corners=True bilinear; nearest_neighbor takes row floor(r*i + 0.5)."""
    x = torch.from_numpy(X)
    got = make_layer(INTERP % "height: 13 width: 20", [X.shape])(x)[0]
    np.testing.assert_allclose(got.numpy(), F.interpolate(x, (13, 20), mode="bilinear", align_corners=True).numpy(),
                               rtol=1e-5, atol=1e-6)
    near = make_layer(INTERP % "height: 9 width: 13 interp_type: 'nearest_neighbor'", [X.shape])(x)[0]
    rows = np.floor(np.float32(4 / 8) * np.arange(9, dtype=np.float32) + 0.5).astype(int)
    cols = np.floor(np.float32(6 / 12) * np.arange(13, dtype=np.float32) + 0.5).astype(int)
    np.testing.assert_array_equal(near.numpy(), X[:, :, rows][:, :, :, cols])


@pytest.mark.parametrize("params", ["height: 7 width: 4", "zoom_factor: 2 pad_beg: -1", "shrink_factor: 3",
                                    "height: 4 width: 9 interp_type: 'nearest_neighbor'"])
def test_interp_gradient(params):
    assert gradcheck_layer(make_layer(INTERP % params, [(1, 2, 5, 6)]), [RNG.standard_normal((1, 2, 5, 6))])


def test_interp_errors():
    with pytest.raises(NetError, match="exactly one of zoom_factor, shrink_factor, height and width"):
        make_layer(INTERP % "zoom_factor: 2 shrink_factor: 2", [X.shape])
    with pytest.raises(NetError, match="pad_beg and pad_end must be <= 0"):
        make_layer(INTERP % "zoom_factor: 2 pad_beg: 1", [X.shape])


# -- ROIPooling ------------------------------------------------------------------------------------------------
FEAT = RNG.standard_normal((2, 3, 10, 12)).astype(np.float32)
ROIS = np.array([[0, 1, 1, 20, 30], [1, 0, 0, 6, 6], [0, 15.6, 2.5, 40, 17.5], [1, -8, -8, 60, 50],
                 [0, 30, 30, 30, 30], [1, 10, 2, 2, 10]], np.float32)
ROI = 'name: "y" type: "ROIPooling" bottom: "f" bottom: "rois" top: "y" roi_pooling_param { %s }'


@pytest.mark.parametrize("params", ["pooled_h: 3 pooled_w: 2 spatial_scale: 0.25",
                                    "pooled_h: 7 pooled_w: 7 spatial_scale: 0.0625",
                                    "pooled_h: 2 pooled_w: 5 spatial_scale: 0.5"])
def test_roi_pooling_matches_opencv(tmp_path, params):
    ours, cv = _one(tmp_path, ROI % params, {"f": FEAT, "rois": ROIS})
    np.testing.assert_array_equal(ours, cv)


def _roi_pool_reference(x, rois, ph, pw, scale):
    """roi_pooling_layer.cpp Forward_cpu loop by loop, with its argmax, and the GPU ROIPoolBackward."""
    n, c, h, w = x.shape
    top = np.zeros((len(rois), c, ph, pw), np.float32)
    arg = -np.ones(top.shape, np.int64)

    def rnd(v):
        v = float(np.float32(v) * np.float32(scale))
        return int(np.sign(v) * np.floor(abs(v) + 0.5))
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        sw, sh, ew, eh = rnd(x1), rnd(y1), rnd(x2), rnd(y2)
        bh, bw = np.float32(max(eh - sh + 1, 1)) / np.float32(ph), np.float32(max(ew - sw + 1, 1)) / np.float32(pw)
        for i in range(ph):
            for j in range(pw):
                hs = min(max(int(np.floor(np.float32(i) * bh)) + sh, 0), h)
                he = min(max(int(np.ceil(np.float32(i + 1) * bh)) + sh, 0), h)
                ws = min(max(int(np.floor(np.float32(j) * bw)) + sw, 0), w)
                we = min(max(int(np.ceil(np.float32(j + 1) * bw)) + sw, 0), w)
                for ch in range(c):
                    best = -np.inf if he > hs and we > ws else 0.0
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            if x[int(b), ch, yy, xx] > best:
                                best, arg[r, ch, i, j] = x[int(b), ch, yy, xx], yy * w + xx
                    top[r, ch, i, j] = best
    return top, arg


def test_roi_pooling_closed_form_and_forks_backward():
    layer = make_layer(ROI % "pooled_h: 3 pooled_w: 4 spatial_scale: 0.25", [FEAT.shape, ROIS.shape])
    x = torch.from_numpy(FEAT).requires_grad_(True)
    top = layer(x, torch.from_numpy(ROIS))[0]
    want, arg = _roi_pool_reference(FEAT, ROIS, 3, 4, 0.25)
    np.testing.assert_array_equal(top.detach().numpy(), want)
    dtop = RNG.standard_normal(top.shape).astype(np.float32)
    top.backward(torch.from_numpy(dtop))
    grad = np.zeros(FEAT.size, np.float64)
    for r, ch, i, j in np.ndindex(*arg.shape):
        if arg[r, ch, i, j] >= 0:
            grad[(int(ROIS[r, 0]) * 3 + ch) * 120 + arg[r, ch, i, j]] += dtop[r, ch, i, j]
    np.testing.assert_allclose(x.grad.numpy().ravel(), grad, rtol=1e-6, atol=1e-6)
    assert gradcheck_layer(layer, [FEAT, ROIS], grad_inputs=[0])


def test_roi_pooling_errors():
    with pytest.raises(NetError, match=r"ROIs \(R, 5\)"):
        make_layer(ROI % "pooled_h: 2 pooled_w: 2", [FEAT.shape, (3, 4)])
    layer = make_layer(ROI % "pooled_h: 2 pooled_w: 2", [FEAT.shape, (1, 5)])
    with pytest.raises(NetError, match="ROI batch index 2..2 outside the batch of 2"):
        layer(torch.from_numpy(FEAT), torch.tensor([[2.0, 0, 0, 1, 1]]))


# -- SmoothL1Loss -----------------------------------------------------------------------------------------------
def _smooth_l1(d, sigma):
    s2 = sigma * sigma
    return np.where(np.abs(d) < 1 / s2, 0.5 * d * d * s2, np.abs(d) - 0.5 / s2)


@pytest.mark.parametrize("sigma, weights", [(1.0, False), (3.0, True), (0.5, True)])
def test_smooth_l1_closed_form_and_gradient(sigma, weights):
    shape = (4, 8, 2, 3)
    p, t = RNG.standard_normal(shape) * 2, RNG.standard_normal(shape)
    w_in, w_out = RNG.uniform(0, 2, shape), RNG.uniform(0, 2, shape)
    bottoms = 'bottom: "p" bottom: "t"' + (' bottom: "i" bottom: "o"' if weights else "")
    layer = make_layer('name: "l" type: "SmoothL1Loss" %s top: "l" smooth_l1_loss_param { sigma: %g }'
                       % (bottoms, sigma), [shape] * (4 if weights else 2))
    ins = [p, t, w_in, w_out] if weights else [p, t]
    loss = layer.double()(*[torch.from_numpy(v) for v in ins])[0]
    d = (p - t) * (w_in if weights else 1)
    want = (_smooth_l1(d, sigma) * (w_out if weights else 1)).sum() / shape[0]
    assert loss.shape == () and loss.item() == pytest.approx(want, rel=1e-12)
    assert gradcheck_layer(layer, ins, grad_inputs=[0, 1])


def test_smooth_l1_in_a_net_is_a_loss():
    net = Net('layer { name: "p" type: "Input" top: "p" input_param { shape { dim: 2 dim: 4 } } }\n'
              'layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 4 } } }\n'
              'layer { name: "l" type: "SmoothL1Loss" bottom: "p" bottom: "t" top: "l" }\n')
    p = torch.tensor([[0.5, -2.0, 0.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    net(p=p, t=torch.zeros(2, 4))
    assert net.loss.item() == pytest.approx((0.125 + 1.5 + 0 + 2.5 + 4 * 0.5) / 2)
    with pytest.raises(NetError, match="takes 2 bottoms .* or 4"):
        make_layer('name: "l" type: "SmoothL1Loss" bottom: "p" bottom: "t" bottom: "i" top: "l"', [(2, 4)] * 3)
