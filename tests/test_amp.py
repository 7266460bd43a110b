"""Mixed precision (autocast bf16 / fp16 with a loss scale) and channels-last, on the CPU.

No Caffe golden exists for bf16 (Caffe is float32 only): the references are our own float32 runs, with
tolerances from bf16's 8-bit mantissa (relative step 2^-8 = 0.4%), and the facts that autocast must
change: the convolution blobs really are bf16, the fp32-only layers' tops are float32, the gradients
and weights stay float32."""
import os
import sys

import numpy as np
import pytest
import torch

from recaffe.netspec.net.net import Net
from recaffe.solver.log import capture
from recaffe.solver.solver import Solver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "models", "zoo")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddp_helpers as h  # noqa: E402


def deploy(name, seed=1):
    return h.randomize(Net(os.path.join(ZOO, name, "deploy.prototxt")), seed)


def data_for(net, n=2):
    shape = (n,) + tuple(net.blob_shapes[net.inputs[0]][1:])
    return torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 50


@pytest.mark.parametrize("name,logit", [("bvlc_reference_caffenet", "fc8"), ("bvlc_googlenet", "loss3/classifier")])
def test_bf16_autocast_inference_is_really_applied(name, logit):
    net = deploy(name)
    x = data_for(net)
    with torch.no_grad():
        net(data=x)
        ref = {k: v.clone() for k, v in net.blobs.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16):     # the default net: fast paths step aside
            net(data=x)
    convs = [t for n, t in zip(net.layer_names, net.layer_types) if t == "Convolution"]
    assert convs
    for n, t in zip(net.layer_names, net.layer_types):
        if t == "Convolution":
            assert net.blobs[net.layer(n).lp.top[0]].dtype == torch.bfloat16, n
    assert net.blobs["prob"].dtype == torch.float32                           # Softmax in fp32
    a, r = net.blobs[logit].float(), ref[logit]
    rel = float((a - r).abs().max() / r.abs().max())
    assert 1e-4 < rel < 0.02          # really lower precision, and close
    top2 = r.topk(2, 1).values
    clear = (top2[:, 0] - top2[:, 1]) > 4 * float((a - r).abs().max())   # top-1 decided beyond the error
    assert clear.any()
    assert torch.equal(a.argmax(1)[clear], r.argmax(1)[clear])
    np.testing.assert_allclose(net.blobs["prob"].numpy(), ref["prob"].numpy(), atol=2e-3)


LAYERS = """name: "amp_layers" force_backward: true
layer { name: "in" type: "Input" top: "x" top: "label" top: "target"
  input_param { shape { dim: 4 dim: 3 dim: 12 dim: 12 } shape { dim: 4 } shape { dim: 4 dim: 5 } } }
layer { name: "c1" type: "Convolution" bottom: "x" top: "c1" convolution_param { num_output: 8 kernel_size: 3 pad: 1
  weight_filler { type: "msra" } } }
layer { name: "bn" type: "BatchNorm" bottom: "c1" top: "c1" }
layer { name: "sc" type: "Scale" bottom: "c1" top: "c1" scale_param { bias_term: true } }
layer { name: "pr" type: "PReLU" bottom: "c1" top: "c1" }
layer { name: "lrn" type: "LRN" bottom: "c1" top: "lrn" lrn_param { local_size: 3 } }
layer { name: "lrnw" type: "LRN" bottom: "lrn" top: "lrnw" lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL } }
layer { name: "c2" type: "Convolution" bottom: "lrnw" top: "c2" convolution_param { num_output: 6 kernel_size: 1
  weight_filler { type: "msra" } } }
layer { name: "pow" type: "Power" bottom: "c2" top: "pow" power_param { power: 2 shift: 3 scale: 0.5 } }
layer { name: "sig" type: "Sigmoid" bottom: "pow" top: "sig" }
layer { name: "prod" type: "Eltwise" bottom: "sig" bottom: "c2" top: "prod" eltwise_param { operation: PROD } }
layer { name: "pool" type: "Pooling" bottom: "prod" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "ave" type: "Pooling" bottom: "pool" top: "ave" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "dc" type: "Deconvolution" bottom: "ave" top: "dc" convolution_param { num_output: 4 kernel_size: 2 stride: 2
  weight_filler { type: "msra" } } }
layer { name: "mvn" type: "MVN" bottom: "dc" top: "mvn" }
layer { name: "ip" type: "InnerProduct" bottom: "mvn" top: "ip" inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "tanh" type: "TanH" bottom: "ip" top: "tanh" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "eu" type: "EuclideanLoss" bottom: "tanh" bottom: "target" top: "eu" }
layer { name: "sce" type: "SigmoidCrossEntropyLoss" bottom: "ip" bottom: "target" top: "sce" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"""


FORKS = """name: "amp_forks" force_backward: true
layer { name: "in" type: "Input" top: "x" top: "target" top: "rois"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } shape { dim: 2 dim: 4 dim: 8 dim: 8 } shape { dim: 2 dim: 5 } } }
layer { name: "c1" type: "Convolution" bottom: "x" top: "c1" convolution_param { num_output: 4 kernel_size: 3 pad: 1
  weight_filler { type: "msra" } } }
layer { name: "norm" type: "Normalize" bottom: "c1" top: "norm" norm_param { across_spatial: false
  scale_filler { type: "constant" value: 20 } channel_shared: false } }
layer { name: "bn" type: "BN" bottom: "c1" top: "bn" bn_param { bn_mode: LEARN
  scale_filler { type: "constant" value: 1 } shift_filler { type: "constant" value: 0 } } }
layer { name: "sum" type: "Eltwise" bottom: "norm" bottom: "bn" top: "sum" }
layer { name: "c2" type: "Convolution" bottom: "sum" top: "c2" convolution_param { num_output: 4 kernel_size: 1
  weight_filler { type: "msra" } } }
layer { name: "roi" type: "ROIPooling" bottom: "c2" bottom: "rois" top: "roi"
  roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 1 } }
layer { name: "l1" type: "SmoothL1Loss" bottom: "c2" bottom: "target" top: "l1" }
layer { name: "l2" type: "EuclideanLoss" bottom: "roi" bottom: "roi_target" top: "l2" }
"""


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fork_layers_under_autocast(dtype):
    """Fork layers: SSD's Normalize (an L2 norm), SegNet's BN (batch statistics) and R-CNN's SmoothL1Loss
    run in float32 under autocast, the convolutions around them in low precision; ROIPooling's
    Function takes the low-precision map; the loss stays within 2% of float32 and the gradients finite."""
    torch.manual_seed(0)
    text = FORKS.replace('top: "rois"\n', 'top: "rois" top: "roi_target"\n').replace(
        "shape { dim: 2 dim: 5 } } }", "shape { dim: 2 dim: 5 } shape { dim: 2 dim: 4 dim: 2 dim: 2 } } }")
    net = Net(text, phase="TRAIN")
    g = torch.Generator().manual_seed(5)
    feed = dict(x=torch.randn(2, 3, 8, 8, generator=g), target=torch.randn(2, 4, 8, 8, generator=g),
                rois=torch.tensor([[0., 0, 0, 5, 5], [1., 2, 1, 7, 6]]), roi_target=torch.randn(2, 4, 2, 2, generator=g))
    net(**feed)
    ref_loss = float(net.loss.detach())
    with torch.autocast("cpu", dtype=dtype):
        net(**feed)
    net.backward()
    assert net.blobs["c1"].dtype == dtype and net.blobs["c2"].dtype == dtype and net.blobs["roi"].dtype == dtype
    for name in ("norm", "bn", "l1", "l2"):
        assert net.blobs[name].dtype == torch.float32, name
    x = net.blobs["c1"].detach().float()        # the fp32 layers computed from it in float32 (closed forms)
    norm = x / torch.sqrt((x * x).sum(1, keepdim=True) + 1e-10) * 20
    torch.testing.assert_close(net.blobs["norm"].detach(), norm, rtol=1e-5, atol=1e-5)
    mean = x.mean((2, 3)).mean(0).view(1, -1, 1, 1)
    var = (x * x).mean((2, 3)).mean(0).view(1, -1, 1, 1) - mean * mean
    torch.testing.assert_close(net.blobs["bn"].detach(), (x - mean) / torch.sqrt(var + 1e-9), rtol=1e-4, atol=1e-4)
    assert abs(float(net.loss.detach()) - ref_loss) < 0.02 * abs(ref_loss)
    for n, blobs in net.params.items():
        for p in blobs:
            assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), n


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_custom_function_trains_under_autocast(dtype):
    torch.manual_seed(0)
    net = Net(LAYERS, phase="TRAIN")
    g = torch.Generator().manual_seed(3)
    feed = dict(x=torch.randn(4, 3, 12, 12, generator=g), label=torch.tensor([0., 1., 2., 3.]),
                target=torch.rand(4, 5, generator=g))
    net(**feed)
    net.backward()
    ref = {n: [None if p.grad is None else p.grad.clone() for p in b] for n, b in net.params.items()}
    ref_loss = float(net.loss.detach())
    for b in net.params.values():
        for p in b:
            p.grad = None
    with torch.autocast("cpu", dtype=dtype):
        net(**feed)
    net.backward()
    for name in ("c2", "pow", "prod", "pool", "dc", "ip"):       # autocast applied: the custom Functions of
        assert net.blobs[name].dtype == dtype, name                # Power, PROD, MAX pooling see low precision
    for name in ("loss", "eu", "sce", "acc", "lrn", "lrnw", "mvn"):                   # fp32 layers
        assert net.blobs[name].dtype == torch.float32, name
    assert abs(float(net.loss.detach()) - ref_loss) < 0.02 * abs(ref_loss)
    for n, blobs in net.params.items():
        for i, p in enumerate(blobs):
            if ref[n][i] is None:         # BatchNorm statistics: no gradient
                assert p.grad is None
                continue
            assert p.dtype == torch.float32 and p.grad.dtype == torch.float32, n
            assert torch.isfinite(p.grad).all(), n
            r = ref[n][i]
            if i == 0 or n == "sc":     # (c1's bias gets a zero gradient: BatchNorm removes the mean)
                cos = float((p.grad * r).sum() / (p.grad.norm() * r.norm()))
                assert cos > (0.95 if dtype == torch.bfloat16 else 0.98), (n, cos)   # the same direction


def amp_solver(tmp_path, amp=None, channels_last=False, lr=0.01, extra=""):
    """The LeNet-shaped recipe of the DDP tests with BatchNorm + Scale and LRN added."""
    db = h.make_db(tmp_path)
    path = h.write_solver(tmp_path, db, iters=20, display=0, extra=extra, name=f"amp_{amp}_{channels_last}")
    folder = os.path.dirname(path)
    net = open(os.path.join(folder, "net.prototxt")).read()
    net = net.replace('layer { name: "pool1"', '''layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "pool1"''').replace('layer { name: "pool2"', '''layer { name: "norm2" type: "LRN" bottom: "conv2" top: "conv2"
  lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 } }
layer { name: "pool2"''')
    open(os.path.join(folder, "net.prototxt"), "w").write(net)
    text = open(path).read().replace("base_lr: 0.05", f"base_lr: {lr}")
    open(path, "w").write(text)
    torch.set_num_threads(1)
    return Solver(path, amp=amp, channels_last=channels_last)


def losses(solver, n=20):
    out = []
    for _ in range(n):
        solver.step(1)
        out.append(float(solver.net.loss.detach()))
    return out


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_follows_fp32(tmp_path, amp):
    ref = losses(amp_solver(tmp_path))
    s = amp_solver(tmp_path, amp)
    got = losses(s)
    assert s.net.blobs["ip1"].dtype == (torch.bfloat16 if amp == "bf16" else torch.float16)
    assert all(p.dtype == torch.float32 for p in s.learnable)
    assert all(h.dtype == torch.float32 for p in s.learnable for h in s.optimizer.histories(p))
    assert abs(np.mean(got) - np.mean(ref)) < 0.02 * np.mean(ref)        # mean loss of 20 iterations
    assert abs(got[-1] - ref[-1]) < 0.05 * ref[-1]
    assert got[-1] < 0.9 * got[0]                                          # it learns


def test_fp16_overflow_skips_the_update_and_says_so(tmp_path):
    s = amp_solver(tmp_path, "fp16", extra="clip_gradients: 1000")
    s.precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 40)   # fp16 gradients overflow
    weights = [p for p in s.learnable if p.requires_grad]      # (BatchNorm statistics move in forward)
    before = [p.detach().clone() for p in weights]
    with capture() as lines:
        s.step(1)
    assert s.iter == 1 and s.precision.skipped == 1
    assert all(torch.equal(a, p) for a, p in zip(before, weights))             # no update
    assert any("Iteration 0, fp16 gradient overflow at loss scale 1.09951e+12: update skipped, loss scale "
               "now 5.49756e+11" in ln for ln in lines)
    with capture() as lines:
        while s.precision.skipped == s.iter:
            s.step(1)
    assert not any(torch.equal(a, p) for a, p in zip(before, weights))        # then it trains
    assert not any("Gradient clipping" in ln for ln in lines)                 # unscaled before clipping


def test_fp16_clipping_sees_the_unscaled_norm(tmp_path):
    ref = amp_solver(tmp_path, extra="clip_gradients: 0.1")
    s = amp_solver(tmp_path, "fp16", extra="clip_gradients: 0.1")
    ref.step(1)
    s.step(1)
    (n32, _), (n16, _) = ref.optimizer.last_clip, s.optimizer.last_clip
    assert abs(n16 - n32) < 0.02 * n32 and n32 > 0.1


def test_channels_last_training_equals_nchw(tmp_path):
    a = amp_solver(tmp_path)
    b = amp_solver(tmp_path, channels_last=True)
    assert b.net.params["conv1"][0].is_contiguous(memory_format=torch.channels_last)
    la, lb = losses(a, 8), losses(b, 8)
    np.testing.assert_allclose(lb, la, rtol=1e-5)
    for p, q in zip(a.learnable, b.learnable):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["bvlc_reference_caffenet", "bvlc_googlenet", "resnet50"])
def test_channels_last_inference_equals_nchw(name):
    net = deploy(name)
    x = data_for(net, 1)
    with torch.no_grad():
        ref = {k: v.clone() for k, v in net(data=x).items()}
        net.to(memory_format=torch.channels_last)
        out = net(data=x.contiguous(memory_format=torch.channels_last))
    for k in ref:
        np.testing.assert_allclose(out[k].numpy(), ref[k].numpy(), rtol=1e-4, atol=1e-6)


def test_command_line_flags(tmp_path):
    db = h.make_db(tmp_path)
    solver = h.write_solver(tmp_path, db, iters=4)
    rc, ref = h.run_one(solver)
    rc2, err = h.run_one(solver, "-amp=bf16", "-channels_last")
    assert rc == 0 and rc2 == 0, err
    want = float(h.log_lines(ref, "Iteration 4, loss =")[0].split("= ")[1])
    got = float(h.log_lines(err, "Iteration 4, loss =")[0].split("= ")[1])
    assert abs(got - want) < 0.02 * want and got != want          # bf16 ran, and stayed close
    rc, err = h.run_one(solver, "-amp=int8")
    assert rc == 2 and err.strip().splitlines()[-1] == "train: error: -amp: 'int8'; valid: bf16, fp16 (or fp32 for none)"
