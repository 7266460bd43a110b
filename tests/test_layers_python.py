"""The Python layer: opt-in refusal, pycaffe's interface, forward/backward against closed forms
(user layers in tests/pylayer_demo.py)."""
import numpy as np
import pytest
import torch
from google.protobuf import text_format

from recaffe.netspec.net.layers import layer_class
from recaffe.netspec.net.layers import python as pylayer
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError


def build(layer, shapes, param_str="", phase="TEST", tops=("y",), module="pylayer_demo"):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge('name: "py" type: "Python" python_param { module: "%s" layer: "%s" }' % (module, layer), lp)
    lp.python_param.param_str = param_str
    lp.bottom.extend("b%d" % i for i in range(len(shapes)))
    lp.top.extend(tops)
    return layer_class("Python", "py")(lp, shapes, phase)


@pytest.fixture
def allowed():
    pylayer.allow_python_layers(True)
    yield
    pylayer.allow_python_layers(None)


def test_refused_without_opt_in(monkeypatch):
    monkeypatch.delenv(pylayer.ENV_VAR, raising=False)
    pylayer.allow_python_layers(None)
    with pytest.raises(NetError, match=r"layer 'py' \(Python\): refusing to run Python layer code \(module "
                                       r"'pylayer_demo', class 'ScaledIdentity'\).*RECAFFE_ALLOW_PYTHON_LAYERS=1.*"
                                       r"allow_python_layers\(True\)"):
        build("ScaledIdentity", [(2, 3)], '{"scale": 2}')


def test_opt_in_by_environment(monkeypatch):
    pylayer.allow_python_layers(None)
    monkeypatch.setenv(pylayer.ENV_VAR, "1")
    layer = build("ScaledIdentity", [(2, 3)], '{"scale": 2}')
    assert layer.top_shapes == [(2, 3)]
    pylayer.allow_python_layers(False)  # the explicit switch wins over the environment
    try:
        with pytest.raises(NetError, match="refusing"):
            build("ScaledIdentity", [(2, 3)], '{"scale": 2}')
    finally:
        pylayer.allow_python_layers(None)


def test_scaled_identity_forward_backward(allowed):
    layer = build("ScaledIdentity", [(2, 3, 4)], '{"scale": 2.5}', phase="TRAIN")
    assert layer.py.seen_phase == 0 and layer.py.param_str == '{"scale": 2.5}'
    x = torch.randn(2, 3, 4, requires_grad=True)
    y, = layer(x)
    np.testing.assert_allclose(y.detach().numpy(), 2.5 * x.detach().numpy(), rtol=1e-6)
    g = torch.randn(2, 3, 4)
    y.backward(g)
    np.testing.assert_allclose(x.grad.numpy(), 2.5 * g.numpy(), rtol=1e-6)
    assert layer.py.propagate_log == [[True]]
    layer(torch.randn(2, 3, 4))  # no gradient asked: backward is never called
    assert layer.py.propagate_log == [[True]]


def test_learnable_blobs_become_parameters(allowed):
    layer = build("ChannelAffine", [(2, 3, 2)])
    assert [tuple(p.shape) for p in layer.blobs] == [(3,), (3,)]
    np.testing.assert_array_equal(layer.blobs[1].detach().numpy(), 0.5)
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([1.0, -2.0, 3.0]))  # the user's blob.data views it
    x = torch.randn(2, 3, 2, requires_grad=True)
    y, = layer(x)
    w, b = layer.blobs[0].detach(), layer.blobs[1].detach()
    want = w.view(1, 3, 1) * x.detach() + b.view(1, 3, 1)
    np.testing.assert_allclose(y.detach().numpy(), want.numpy(), rtol=1e-6)
    g = torch.randn(2, 3, 2)
    for _ in range(2):  # gradients accumulate like any parameter's
        y, = layer(x)
        y.backward(g)
    xd = x.detach()
    np.testing.assert_allclose(layer.blobs[0].grad.numpy(), 2 * (g * xd).sum((0, 2)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].grad.numpy(), 2 * g.sum((0, 2)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), 2 * (w.view(1, 3, 1) * g).numpy(), rtol=1e-5)


def test_python_loss_layer_scales_by_top_diff(allowed):
    layer = build("EuclideanLossLayer", [(4, 3), (4, 3)], tops=("loss",))
    assert layer.top_shapes == [(1,)]
    a, b = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
    loss, = layer(a, b)
    d = (a - b).detach()
    assert float(loss.detach()) == pytest.approx(float((d * d).sum() / 8), rel=1e-5)
    (loss * 3.0).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), (3.0 * d / 4).numpy(), rtol=1e-5)


def test_plain_class_without_init(allowed):
    layer = build("NoInit", [], "1.5")
    assert layer.top_shapes == [(2, 3)]
    y, = layer()
    np.testing.assert_array_equal(y.numpy(), np.full((2, 3), 1.5, np.float32))


def test_bad_module_or_class(allowed):
    with pytest.raises(NetError, match=r"layer 'py' \(Python\): cannot import python_param.module 'no_such_mod_xyz'"):
        build("X", [(1,)], module="no_such_mod_xyz")
    with pytest.raises(NetError, match="module 'pylayer_demo' has no class 'Missing'"):
        build("Missing", [(1,)])


def test_user_errors_say_which_layer(allowed):
    with pytest.raises(Exception, match="Need two inputs") as info:
        build("EuclideanLossLayer", [(4, 3)], tops=("loss",))
    assert any("Python layer 'py'" in n for n in getattr(info.value, "__notes__", []))
