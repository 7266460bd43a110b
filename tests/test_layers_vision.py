"""Vision layers (Convolution, Deconvolution, Pooling, SPP, Im2col, LRN, Crop) against Caffe goldens
(tests/oracle/make_layers_vision.py); STOCHASTIC pooling against its closed form (Caffe's CPU build
cannot run it); bad-input errors."""
import glob
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from google.protobuf import text_format

from layer_harness import GOLDEN, assert_build_error, check_case, load_case
from recaffe.netspec.net.layers import layer_class
from recaffe.protos import caffe_pb2

CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(GOLDEN, "vision_*.npz")))
NO_BACKWARD = {"vision_pool_max_empty"}   # Caffe would write the empty window's gradient to index -1


def test_golden_set_is_complete():
    assert len(CASES) >= 50
    for prefix in ("conv", "deconv", "pool_max", "pool_ave", "pool_global", "spp", "im2col", "lrn_across",
                   "lrn_within", "crop"):
        assert any(c.startswith("vision_" + prefix) for c in CASES), prefix


@pytest.mark.parametrize("case_id", [c for c in CASES if c not in NO_BACKWARD])
def test_parity(case_id):
    check_case(case_id)


def test_max_pool_empty_window_forward():
    """A CEIL window starting past an unpadded input: Caffe outputs -FLT_MAX with mask -1."""
    layer, tops = check_case("vision_pool_max_empty", backward=False)
    assert (load_case("vision_pool_max_empty")["top_1"] == -1).any()


def test_goldens_exercise_the_traps():
    """The pooling goldens really contain what they claim (ties, clipped windows, NaN/empty)."""
    m = load_case("vision_pool_max_mask")
    x = m["bottom_0"]
    assert len(np.unique(x)) <= 4      # small integers: ties in most windows
    assert m["top_0"].shape[2:] == (3, 3)            # ceil: (7-3)/2 -> 3 rows, (6-3)/2 -> 3 columns
    assert load_case("vision_pool_max_clip")["top_0"].shape[2:] == (3, 3)   # ceil gives 4, clip 3
    assert np.isnan(load_case("vision_pool_ave_empty")["top_0"]).any()
    assert load_case("vision_pool_max_floor")["top_0"].shape[2:] == (3, 4)
    assert load_case("vision_conv_short")["top_0"].shape[2:] == (1, 1)


def test_max_pool_mask_is_first_max_in_row_major_order():
    """Check Caffe's tie rule directly on its own golden: the mask is the first maximal cell."""
    m = load_case("vision_pool_max_mask")
    x, y, mask = m["bottom_0"], m["top_0"], m["top_1"].astype(int)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for ph in range(y.shape[2]):
                for pw in range(y.shape[3]):
                    win = x[n, c, 2 * ph:2 * ph + 3, 2 * pw:2 * pw + 3]
                    r, q = np.unravel_index(np.argmax(win), win.shape)   # numpy: first max
                    assert mask[n, c, ph, pw] == (2 * ph + r) * x.shape[3] + 2 * pw + q


def build(text, shapes, phase="TEST"):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return layer_class(lp.type, lp.name)(lp, shapes, phase).apply_fillers()


def stochastic_reference(x, k, s):
    """Caffe's StoPoolForwardTest (pooling_layer.cu): sum(x^2)/sum(x) over the window clipped to the
    image, 0 when the sum is not positive; output size from the CEIL rule without padding."""
    N, C, H, W = x.shape
    PH, PW = -(-(H - k) // s) + 1, -(-(W - k) // s) + 1
    out = np.zeros((N, C, PH, PW), np.float64)
    for ph in range(PH):
        for pw in range(PW):
            win = x[:, :, ph * s:min(ph * s + k, H), pw * s:min(pw * s + k, W)].astype(np.float64)
            tot = win.sum((2, 3))
            out[:, :, ph, pw] = np.where(tot > 0, (win ** 2).sum((2, 3)) / np.where(tot > 0, tot, 1), 0)
    return out


def test_stochastic_pool_test_phase_closed_form():
    x = np.abs(np.random.RandomState(3).randn(2, 3, 7, 6)).astype(np.float32)
    x[0, 0] = 0.0                      # all-zero windows give 0
    x[1, 1, :3, :3] = -1.0             # a negative sum gives 0
    layer = build('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: STOCHASTIC '
                  'kernel_size: 3 stride: 2 }', [x.shape], "TEST")
    y = layer(torch.from_numpy(x))[0]
    assert tuple(y.shape) == layer.top_shapes[0] == (2, 3, 3, 3)
    np.testing.assert_allclose(y.numpy(), stochastic_reference(x, 3, 2), rtol=1e-5, atol=1e-6)


def test_stochastic_pool_train_samples_proportionally():
    """TRAIN picks a window cell with probability value/sum and routes the gradient to it alone."""
    torch.manual_seed(0)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2).expand(4000, 1, 2, 2).contiguous()
    layer = build('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: STOCHASTIC '
                  'kernel_size: 2 stride: 2 }', [tuple(x.shape)], "TRAIN")
    x.requires_grad_(True)
    y = layer(x)[0]
    freq = np.array([(y.detach() == v).float().mean().item() for v in (1, 2, 3, 4)])
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.03)
    y.sum().backward()
    g = x.grad.reshape(4000, 4)
    assert torch.all(g.sum(1) == 1) and torch.all((g == 0) | (g == 1))
    picked = torch.tensor([1.0, 2.0, 3.0, 4.0])[g.argmax(1)]
    assert torch.equal(picked, y.detach().reshape(-1))


BAD = [
    ('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 3 kernel_size: 3 group: 2 }',
     [(1, 4, 5, 5)], "group 2 must divide"),
    ('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 4 }',
     [(1, 4, 5, 5)], "kernel_size must be given"),
    ('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 4 kernel_size: 3 '
     'kernel_h: 3 kernel_w: 3 }', [(1, 4, 5, 5)], "not both"),
    ('name: "c" type: "Convolution" bottom: "a" bottom: "b" top: "y" top: "z" convolution_param { num_output: 2 '
     'kernel_size: 1 }', [(1, 4, 5, 5), (1, 4, 5, 6)], "same shape"),
    ('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 2 kernel_size: 7 }',
     [(1, 4, 5, 5)], "not positive"),
    ('name: "d" type: "Deconvolution" bottom: "x" top: "y" convolution_param { num_output: 2 kernel_size: 2 '
     'stride: 0 }', [(1, 4, 5, 5)], "stride"),
    ('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { kernel_size: 3 pad: 3 }',
     [(1, 1, 5, 5)], "smaller than the kernel"),
    ('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: STOCHASTIC kernel_size: 3 pad: 1 }',
     [(1, 1, 5, 5)], "padding is implemented only"),
    ('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { kernel_size: 3 pad: 1 pad_h: 1 pad_w: 1 }',
     [(1, 1, 5, 5)], "pad OR both"),
    ('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { global_pooling: true kernel_size: 2 }',
     [(1, 1, 5, 5)], "global_pooling"),
    ('name: "p" type: "Pooling" bottom: "x" top: "y" top: "m" pooling_param { pool: AVE kernel_size: 2 }',
     [(1, 1, 5, 5)], "only produced by MAX"),
    ('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { kernel_size: 2 }', [(1, 5, 5)], "4 axes"),
    ('name: "s" type: "SPP" bottom: "x" top: "y" spp_param { pyramid_height: 3 }', [(1, 1, 5, 5)],
     "smaller than the kernel"),
    ('name: "l" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 4 }', [(1, 5, 3, 3)], "odd"),
    ('name: "cr" type: "Crop" bottom: "x" bottom: "r" top: "y" crop_param { offset: 1 offset: 1 offset: 1 }',
     [(1, 3, 5, 5), (1, 3, 2, 2)], "one offset per cropped axis"),
    ('name: "cr" type: "Crop" bottom: "x" bottom: "r" top: "y" crop_param { offset: 3 }',
     [(1, 3, 5, 5), (1, 3, 3, 3)], "out of bounds"),
]


@pytest.mark.parametrize("text,shapes,what", BAD)
def test_bad_input_names_the_layer(text, shapes, what):
    assert_build_error(build, text, shapes, what)


@pytest.mark.parametrize("xs, ws, stride, pad, dil, plan", [
    ((2, 5, 7, 7), (6, 5, 1, 1), (1, 1), (0, 0), (1, 1), (True, True, True)),
    ((2, 5, 7, 7), (6, 5, 1, 1), (2, 2), (0, 0), (1, 1), (True, True, True)),
    ((3, 4, 6, 5), (3, 4, 1, 1), (2, 3), (0, 0), (1, 1), (True, False, True)),
    ((2, 3, 9, 8), (4, 3, 3, 2), (2, 1), (1, 0), (2, 1), (False, False, True)),
])
def test_gemm_convolution_passes_equal_the_convolution(xs, ws, stride, pad, dil, plan):
    """The GEMM passes (1x1 forward / data gradient, strided too, and the unfold weight gradient) give
    torch's convolution and its gradients (float64 gradcheck; every subset of inputs needing grad)."""
    from recaffe.netspec.net.kernels.conv import _ConvMM
    torch.manual_seed(0)
    x, w, b = (torch.randn(s, dtype=torch.float64) for s in (xs, ws, ws[:1]))
    f = lambda x, w, b: _ConvMM.apply(x, w, b, stride, pad, dil, plan)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x.requires_grad_(), w.requires_grad_(), b.requires_grad_()))
    assert torch.autograd.gradgradcheck(f, (x, w, b))     # create_graph goes through torch's backward
    ref = F.conv2d(x, w, b, stride, pad, dil)
    g = torch.randn_like(ref)
    for mask in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)):
        ins = [t.detach().requires_grad_(bool(m)) for t, m in zip((x, w, b), mask)]
        want = [t for t in ins if t.requires_grad]
        ours = torch.autograd.grad((f(*ins) * g).sum(), want)
        theirs = torch.autograd.grad((F.conv2d(ins[0], ins[1], ins[2], stride, pad, dil) * g).sum(), want)
        for a, c in zip(ours, theirs):
            torch.testing.assert_close(a, c)


def test_gemm_plan_choice():
    """Which passes leave oneDNN: 1x1 by reduction width and stride, larger kernels only for the weight
    gradient of a few output positions; groups and other dtypes never (conv_plan: only what autograd
    records, CPU float32)."""
    from recaffe.netspec.net.kernels.conv import conv_plan, gemm_passes
    from recaffe.netspec import Net

    def plan(conv, shape, dtype=torch.float32):
        net = Net(f'input: "x" input_shape {{ {" ".join(f"dim: {d}" for d in shape)} }} '
                  f'layer {{ name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param {{ {conv} }} }}')
        lay = net.layers[-1]
        g, x = lay.geo, torch.zeros(shape, dtype=dtype, requires_grad=True)
        w = lay.blobs[0].detach().to(dtype)
        passes = gemm_passes(x, w, g.stride, g.pad, g.dilation, lay.group)
        chosen = conv_plan(x, w, g.stride, g.pad, g.dilation, lay.group)
        assert (chosen is None) == (passes is None or dtype != torch.float32)
        if chosen is not None:
            assert chosen.keywords["passes"] == passes
        with torch.no_grad():
            assert conv_plan(x, w, g.stride, g.pad, g.dilation, lay.group) is None
        return passes if dtype == torch.float32 else chosen
    assert plan("num_output: 256 kernel_size: 1", (1, 64, 8, 8)) == (True, False, True)
    assert plan("num_output: 64 kernel_size: 1", (1, 256, 8, 8)) == (False, True, True)
    assert plan("num_output: 512 kernel_size: 1 stride: 2", (1, 256, 8, 8)) == (True, True, True)
    assert plan("num_output: 512 kernel_size: 3 pad: 1", (1, 512, 7, 7)) == (False, False, True)
    assert plan("num_output: 512 kernel_size: 3 pad: 1", (2, 512, 7, 7)) is None
    assert plan("num_output: 64 kernel_size: 1 group: 2", (1, 64, 8, 8)) is None
    assert plan("num_output: 64 kernel_size: 1", (1, 64, 8, 8), torch.float16) is None
