"""The one switch of the CPU fast paths (netspec/net/kernels): with it off (kernels.disabled(),
kernels.set_enabled(False), net.fast_inference = False) or off by itself (float64, CPU autocast, graph
capture) no kernel runs, and the plain torch ops give the fast paths' outputs and gradients to float32
rounding, on a small CaffeNet-like net with every kind of fast path (GEMM 1x1 convolution, LRN across
and within channels, MAX/AVE pooling, BatchNorm+Scale and ReLU chains, InnerProduct). The values of
both paths against Caffe are checked by the layer and whole-net golden tests."""
import pytest
import torch

from recaffe.netspec import Net
from recaffe.netspec.net import kernels
from recaffe.netspec.net.kernels import conv, fused, linear, lrn, pool

TEXT = '''
layer { name: "in" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 15 dim: 15 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 5 alpha: 0.1 beta: 0.75 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 16 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" batch_norm_param { use_global_stats: true } }
layer { name: "sc2" type: "Scale" bottom: "conv2" top: "conv2" scale_param { bias_term: true } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "norm2" type: "LRN" bottom: "conv2" top: "norm2"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "pool2" type: "Pooling" bottom: "norm2" top: "pool2" pooling_param { pool: AVE kernel_size: 2 stride: 1 } }
layer { name: "fc3" type: "InnerProduct" bottom: "pool2" top: "fc3"
        inner_product_param { num_output: 12 weight_filler { type: "gaussian" std: 0.2 }
                              bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu3" type: "ReLU" bottom: "fc3" top: "fc3" }
layer { name: "fc4" type: "InnerProduct" bottom: "fc3" top: "fc4"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc4" bottom: "label" top: "loss" }
'''
X = torch.randn(2, 3, 15, 15, generator=torch.Generator().manual_seed(1))
LABEL = torch.tensor([1.0, 3.0])

#: every kernel entry point: (owner, attribute, kind)
ENTRY_POINTS = [(conv, "conv2d_gemm", "gemm conv"), (lrn, "lrn_across", "lrn across"),
                (lrn, "lrn_across_autograd", "lrn across (autograd)"), (lrn, "lrn_within", "lrn within"),
                (linear, "onednn_linear", "onednn linear"), (fused, "onednn_linear", "onednn linear"),
                (linear, "inner_product_buffered", "linear (autograd)"), (fused, "conv_pointwise", "fused conv"),
                (fused, "pack_conv", "pack"), (kernels, "pack_conv", "pack"),
                (pool.PoolPlan, "layout", "pool layout"), (pool.PoolPlan, "max_autograd", "max pool (autograd)")]


@pytest.fixture
def calls(monkeypatch):
    """Counts of kernel calls by kind."""
    seen = {}
    for owner, name, kind in ENTRY_POINTS:
        real = getattr(owner, name)

        def counted(*a, _real=real, _kind=kind, **k):
            seen[_kind] = seen.get(_kind, 0) + 1
            return _real(*a, **k)
        monkeypatch.setattr(owner, name, staticmethod(counted) if isinstance(owner, type) else counted)
    return seen


def small_net():
    torch.manual_seed(0)
    net = Net(TEXT, phase="TRAIN")
    with torch.no_grad():
        mean, var, factor = net.params["bn2"]
        mean.normal_(0, 0.5), var.uniform_(0.5, 2.0), factor.fill_(1.0)
        for p in net.params["sc2"]:
            p.uniform_(0.5, 1.5)
    return net


def run(net, x=X):
    """(every blob after a no_grad forward, the loss and parameter gradients of a training pass)."""
    with torch.no_grad():
        net(data=x, label=LABEL)
    blobs = {k: v.detach().clone() for k, v in net.blobs.items()}
    net.zero_grad(set_to_none=True)
    net(data=x, label=LABEL)
    net.backward()
    grads = {f"{n}.{i}": p.grad.clone() for n, ps in net.params.items() for i, p in enumerate(ps)
             if p.grad is not None}
    return blobs, net.loss.detach().clone(), grads


def close(a, b):
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k].to(b[k].dtype), b[k], rtol=1e-5, atol=1e-5, msg=k)


def test_fast_paths_run_by_default(calls):
    run(small_net())
    assert set(calls) == {kind for _, _, kind in ENTRY_POINTS}, calls


@pytest.mark.parametrize("how", ["disabled", "set_enabled", "fast_inference"])
def test_one_switch_turns_every_fast_path_off(calls, how):
    net = small_net()
    fast = run(net)
    calls.clear()
    if how == "disabled":
        with kernels.disabled():
            assert not kernels.enabled(X)
            slow = run(net)
        assert kernels.enabled(X)
    elif how == "set_enabled":
        assert kernels.set_enabled(False) is True
        try:
            slow = run(net)
        finally:
            kernels.set_enabled(True)
    else:
        net.fast_inference = False
        slow = run(net)
    assert calls == {}
    close(slow[0], fast[0])
    torch.testing.assert_close(slow[1], fast[1], rtol=1e-5, atol=1e-6)
    assert len(fast[2]) == 10      # conv1/conv2/sc2/fc3 weight+bias, fc4 weight (BatchNorm: no gradient)
    close(slow[2], fast[2])


def test_switch_is_off_for_other_dtypes(calls):
    net = small_net()
    fast = run(net)
    calls.clear()
    slow = run(net.double(), X.double())
    assert calls == {}
    close(fast[0], slow[0])
    close(fast[2], slow[2])


def test_switch_is_off_under_autocast(calls):
    net = small_net()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert not kernels.enabled(X)
        out = net.forward(end="fc4", data=X, label=LABEL)["fc4"]
    assert calls == {} and out.dtype == torch.bfloat16        # autocast acted on every convolution/product


@pytest.mark.parametrize("probe", ["compiler.is_compiling", "compiler.is_exporting", "onnx.is_in_onnx_export",
                                   "jit.is_tracing"])
def test_switch_is_off_while_a_graph_is_captured(calls, monkeypatch, probe):
    module, name = probe.split(".")
    monkeypatch.setattr(getattr(torch, module), name, lambda: True)
    assert kernels.tracing() and not kernels.enabled(X)
    net = small_net()
    run(net)
    assert calls == {}


def test_disabled_nests_and_is_per_thread():
    import threading
    seen = []
    with kernels.disabled():
        with kernels.disabled():
            pass
        assert not kernels.enabled(X)
        t = threading.Thread(target=lambda: seen.append(kernels.enabled(X)))
        t.start()
        t.join()
    assert seen == [True] and kernels.enabled(X)
    assert not kernels.enabled(X, X.double()) and not kernels.enabled(X.to(torch.bfloat16))
