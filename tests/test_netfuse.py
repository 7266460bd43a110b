"""Fused inference chains (netspec/net/fuse.py: Convolution [+ BatchNorm + Scale] [+ ReLU], InnerProduct
[+ ReLU] as one oneDNN call): the values are the unfused layers' (closed forms in float64 here; the
whole-net tests check the same paths against Caffe's goldens), the chains run only where no gradient
is wanted, follow in-place weight changes, and leave every blob as the unfused net leaves it."""
import pytest
import torch
import torch.nn.functional as F

from recaffe.netspec.net import Net, fuse as netfuse

IN = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 7 dim: 7 } } }\n'
CONV = ('layer { name: "conv" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 4 '
        'kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "gaussian" std: 0.3 } '
        'bias_filler { type: "gaussian" std: 0.3 } } }\n')
BN = ('layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" }\n'
      'layer { name: "sc" type: "Scale" bottom: "c" top: "c" scale_param { bias_term: true } }\n')
RELU = 'layer { name: "relu" type: "ReLU" bottom: "c" top: "c" }\n'
FC = ('layer { name: "fc" type: "InnerProduct" bottom: "c" top: "f" inner_product_param { num_output: 5 '
      'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 } } }\n'
      'layer { name: "relu2" type: "ReLU" bottom: "f" top: "f" }\n')


def _net(text):
    torch.manual_seed(0)
    net = Net(text)
    with torch.no_grad():
        for name in ("bn", "sc"):
            if name in net.params:
                for p in net.params[name]:
                    p.uniform_(0.5, 2.0)
    return net


def _reference(net, x):
    """The unfused layers' arithmetic in float64."""
    w, b = (p.detach().double() for p in net.params["conv"])
    y = F.conv2d(x.double(), w, b, 2, (w.shape[-1] - 1) // 2)
    if "bn" in net.params:
        mean, var, factor = (p.detach().double() for p in net.params["bn"])
        gamma, beta = (p.detach().double() for p in net.params["sc"])
        y = (y - (mean / factor).view(1, -1, 1, 1)) / torch.sqrt((var / factor).view(1, -1, 1, 1) + 1e-5)
        y = y * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)
    y = torch.relu(y)
    out = {"c": y}
    if "fc" in net.params:
        fw, fb = (p.detach().double() for p in net.params["fc"])
        out["f"] = torch.relu(y.reshape(y.shape[0], -1) @ fw.t() + fb)
    return out


def _count_chains(monkeypatch):
    calls = []
    real = netfuse.run_chain
    monkeypatch.setattr(netfuse, "run_chain", lambda net, k, x: calls.append(k) or real(net, k, x))
    return calls


def _close(a, b):
    torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


def test_conv_batchnorm_scale_relu_and_fc_relu_run_fused(monkeypatch):
    net = _net(IN + CONV + BN + RELU + FC)
    assert net.fusion.chains == {1: 4, 5: 2}
    calls = _count_chains(monkeypatch)
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():
        out = net(x=x)
    assert calls == [1, 5]
    ref = _reference(net, x)
    _close(net.blobs["c"], ref["c"])
    _close(out["f"], ref["f"])
    fused_blobs = {k: v.clone() for k, v in net.blobs.items()}
    net.fast_inference = False
    with torch.no_grad():
        net(x=x)
    assert calls == [1, 5] and set(net.blobs) == set(fused_blobs)
    for k, v in net.blobs.items():
        torch.testing.assert_close(fused_blobs[k], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", [3, 5])
def test_cached_weights_follow_in_place_changes(kernel):
    net = _net(IN + CONV.replace("kernel_size: 3 pad: 1", f"kernel_size: {kernel} pad: {(kernel - 1) // 2}")
               + BN + RELU)
    assert net.fusion.chains[1] == 4
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():
        net(x=x)
        net.params["conv"][0].mul_(-2.0)
        net.params["bn"][0].add_(0.25)
        net.params["sc"][1].sub_(1.0)
        out = net(x=x)
    _close(out["c"], _reference(net, x)["c"])


def test_learning_weights_take_the_autograd_path(monkeypatch):
    net = _net(IN + CONV + RELU + FC)
    calls = _count_chains(monkeypatch)
    x = torch.randn(2, 3, 7, 7)
    out = net(x=x)
    assert calls == []
    out["f"].sum().backward()
    assert net.params["conv"][0].grad is not None and net.params["fc"][0].grad is not None
    _close(out["f"].detach(), _reference(net, x)["f"])


def test_frozen_weights_run_fused_under_grad_mode(monkeypatch):
    net = _net(IN + CONV + RELU + FC)
    for p in net.params["conv"]:
        p.requires_grad_(False)
    calls = _count_chains(monkeypatch)
    x = torch.randn(2, 3, 7, 7)
    out = net(x=x)
    assert calls == [1]                         # the learning fc is not fused
    out["f"].sum().backward()
    assert net.params["conv"][0].grad is None and net.params["fc"][0].grad is not None
    _close(out["f"].detach(), _reference(net, x)["f"])


def test_chains_need_in_place_tops_and_respect_partial_forward(monkeypatch):
    text = IN + CONV + 'layer { name: "relu" type: "ReLU" bottom: "c" top: "r" }\n'
    net = _net(text)
    assert net.fusion.chains[1] == 1             # a ReLU writing another blob is not fused
    with torch.no_grad():
        net(x=torch.randn(2, 3, 7, 7))
    assert (net.blobs["c"] < 0).any()           # the convolution's own top keeps its negative values
    net = _net(IN + CONV + BN + RELU)
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():
        top = net.forward(end="conv", x=x)["c"]
    w, b = net.params["conv"]
    _close(top, F.conv2d(x.double(), w.detach().double(), b.detach().double(), 2, 1))


def test_other_input_shapes_fall_back_to_the_layers():
    net = _net(IN + CONV + BN + RELU)
    x = torch.randn(3, 3, 9, 9)
    with torch.no_grad():
        out = net(x=x)
    _close(out["c"], _reference(net, x)["c"])


@pytest.mark.parametrize("flag", ["fast_inference", "fuse_bn_scale"])
def test_flags_turn_fusion_off(monkeypatch, flag):
    net = _net(IN + CONV + BN + RELU)
    setattr(net, flag, False)
    calls = _count_chains(monkeypatch)
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():
        out = net(x=x)
    assert calls == []
    _close(out["c"], _reference(net, x)["c"])


def _grads_of(net, x):
    net.zero_grad(set_to_none=True)
    out = net(x=x)
    (out["f"] * torch.arange(1.0, 6.0)).sum().backward()
    return [p.grad.clone() for blobs in net.params.values() for p in blobs if p.grad is not None]


def test_in_place_relu_under_autograd_gives_the_same_gradients():
    """Conv -> in-place ReLU (and BatchNorm + Scale -> ReLU) run torch.relu_ on the producer's output
    when nothing else holds it; gradients are bit-identical to the out-of-place ReLU's."""
    net = _net(IN + CONV + BN + RELU + FC)
    x = torch.randn(2, 3, 7, 7)
    fast = _grads_of(net, x)
    assert net.blobs["c"]._version > 0 and net.blobs["f"]._version > 0      # ran in place
    net.retain_blob_grads = True                                            # blob diffs wanted: no
    slow = _grads_of(net, x)
    assert net.blobs["c"]._version == 0
    assert len(fast) == 6 and all(torch.equal(a, b) for a, b in zip(fast, slow))
    net.retain_blob_grads = False
    seen = []
    net.layer("conv").register_forward_hook(lambda m, a, out: seen.append(out[0]))
    hooked = _grads_of(net, x)
    assert seen[-1]._version == 0 and (seen[-1] < 0).any()                  # the hook's tensor is untouched
    assert all(torch.equal(a, b) for a, b in zip(fast, hooked))


def test_outputs_come_back_contiguous():
    net = _net(IN + CONV + BN + RELU)
    with torch.no_grad():
        out = net(x=torch.randn(2, 3, 7, 7))["c"]
    assert out.is_contiguous() and out.view(-1).numel() == 2 * 4 * 4 * 4


def test_a_tensor_returned_by_a_partial_forward_is_not_changed_later():
    net = _net(IN + CONV + RELU + FC)
    x = torch.randn(2, 3, 7, 7)
    conv_out = net.forward(end="conv", x=x)["c"]
    before = conv_out.detach().clone()
    net.forward(start="relu")
    assert torch.equal(conv_out.detach(), before) and (before < 0).any()
    assert (net.blobs["c"] >= 0).all()
