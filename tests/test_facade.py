"""The pycaffe facade on closed forms: live .data feeding, parameter editing, forward(start=, end=),
backward diffs, batching, shapes, weights I/O, solvers' names, the caffe alias."""
import os
import warnings

import numpy as np
import pytest

import recaffe as caffe
from recaffe.protos.errors import NetError

IP_NET = """name: "ip"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "scale" type: "Power" bottom: "ip" top: "out" power_param { scale: 3 shift: 1 } }
"""

STAGED = """name: "staged"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "double" type: "Power" bottom: "data" top: "out" power_param { scale: 2 }
        include { stage: "deploy" } }
layer { name: "triple" type: "Power" bottom: "data" top: "out" power_param { scale: 3 }
        exclude { stage: "deploy" } }
layer { name: "drop" type: "Dropout" bottom: "out" top: "out" include { phase: TRAIN } }
"""


@pytest.fixture
def ip_net(tmp_path):
    path = tmp_path / "ip.prototxt"
    path.write_text(IP_NET)
    net = caffe.Net(str(path), caffe.TEST)
    rng = np.random.RandomState(0)
    w, b = rng.randn(4, 3).astype(np.float32), rng.randn(4).astype(np.float32)
    net.params["ip"][0].data[...] = w
    net.params["ip"][1].data[...] = b
    return net, w, b, str(path)


def test_live_data_and_params(ip_net):
    net, w, b, _ = ip_net
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    net.blobs["data"].data[...] = x
    out = net.forward()
    np.testing.assert_allclose(out["out"], 3 * (x @ w.T + b) + 1, rtol=1e-5)
    assert out["out"] is not None and net.blobs["out"].data.shape == (2, 4)
    net.params["ip"][1].data[...] = 0          # editing param data changes the weights in place
    np.testing.assert_allclose(net.forward()["out"], 3 * (x @ w.T) + 1, rtol=1e-5)
    held = net.blobs["data"].data              # a held input array keeps feeding the net
    held[...] = 1
    np.testing.assert_allclose(net.forward()["out"], 3 * np.ones((2, 3)) @ w.T + 1, rtol=1e-5)
    assert net.params["ip"][0].data.base is not None or net.params["ip"][0].data.flags["OWNDATA"] is False


def test_forward_kwargs_start_end(ip_net):
    net, w, b, _ = ip_net
    x = np.ones((2, 3), np.float32)
    out = net.forward(end="ip", data=x)
    assert list(out) == ["ip"]
    np.testing.assert_allclose(out["ip"], x @ w.T + b, rtol=1e-5)
    net.blobs["ip"].data[...] = 2.0
    out = net.forward(start="scale", blobs=["ip"])
    np.testing.assert_allclose(out["out"], np.full((2, 4), 7.0))
    np.testing.assert_allclose(out["ip"], 2.0)
    with pytest.raises(NetError, match="do not match the net inputs"):
        net.forward(wrong=x)
    with pytest.raises(NetError, match="no layer named"):
        net.forward(start="nope")


def test_backward_diffs_closed_form(ip_net):
    net, w, b, _ = ip_net
    x = np.random.RandomState(1).randn(2, 3).astype(np.float32)
    g = np.random.RandomState(2).randn(2, 4).astype(np.float32)
    net.forward(data=x)
    diffs = net.backward(out=g)
    np.testing.assert_allclose(net.blobs["out"].diff, g)
    np.testing.assert_allclose(net.blobs["ip"].diff, 3 * g, rtol=1e-5)
    np.testing.assert_allclose(diffs["data"], 3 * g @ w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][0].diff, 3 * g.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][1].diff, 3 * g.sum(0), rtol=1e-5, atol=1e-6)
    net.backward(out=g)                        # param diffs accumulate (Caffe), blob diffs do not
    np.testing.assert_allclose(net.params["ip"][0].diff, 6 * g.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.blobs["ip"].diff, 3 * g, rtol=1e-5)
    part = net.backward(start="scale", end="scale", diffs=["out"])
    assert set(part) == {"ip", "out"}


def test_blob_shapes_and_reshape(ip_net):
    net, w, b, _ = ip_net
    blob = net.blobs["data"]
    assert blob.shape == (2, 3) and blob.count == 6
    assert (blob.num, blob.channels, blob.height, blob.width) == (2, 3, 1, 1)
    assert net.blobs["out"].shape == (2, 4)          # known before any forward
    blob.reshape(5, 3)
    net.reshape()
    assert net.blobs["out"].data.shape == (5, 4)
    blob.data[...] = 1
    np.testing.assert_allclose(net.forward()["out"], np.tile(3 * (w.sum(1) + b) + 1, (5, 1)), rtol=1e-5)
    assert [l.type for l in net.layers] == ["Input", "InnerProduct", "Power"]
    assert [tuple(p.data.shape) for p in net.layers[1].blobs] == [(4, 3), (4,)]
    assert list(net.params) == ["ip"] and net.inputs == ["data"] and net.outputs == ["out"]


def test_forward_all_pads_and_trims(ip_net):
    net, w, b, _ = ip_net
    x = np.random.RandomState(3).randn(5, 3).astype(np.float32)
    out = net.forward_all(data=x, blobs=["ip"])
    assert out["out"].shape == (5, 4) and out["ip"].shape == (5, 4)
    np.testing.assert_allclose(out["out"], 3 * (x @ w.T + b) + 1, rtol=1e-5, atol=1e-5)
    g = np.ones((5, 4), np.float32)
    outs, diffs = net.forward_backward_all(data=x, out=g)
    np.testing.assert_allclose(diffs["data"], np.tile(3 * w.sum(0), (5, 1)), rtol=1e-5)
    assert outs["out"].shape == (5, 4)


def test_constructor_forms_stages_and_phase(tmp_path, ip_net):
    net, w, b, path = ip_net
    weights = str(tmp_path / "w.caffemodel")
    net.save(weights)
    old = caffe.Net(path, weights, caffe.TEST)
    new = caffe.Net(path, caffe.TEST, weights=weights)
    np.testing.assert_array_equal(old.params["ip"][0].data, w)
    np.testing.assert_array_equal(new.params["ip"][1].data, b)
    pth = str(tmp_path / "w.pth")
    net.save(pth)
    fresh = caffe.Net(path, caffe.TRAIN)
    fresh.copy_from(pth)
    np.testing.assert_array_equal(fresh.params["ip"][0].data, w)
    assert fresh.phase == caffe.TRAIN and new.phase == caffe.TEST
    h5name = str(tmp_path / "w.caffemodel.h5")
    net.save(h5name)                     # pycaffe's save writes a binary proto whatever the name
    assert open(h5name, "rb").read(8) != b"\x89HDF\r\n\x1a\n"
    np.testing.assert_array_equal(caffe.Net(path, caffe.TEST, weights=h5name).params["ip"][0].data, w)
    net.save_hdf5(str(tmp_path / "w2.h5"))
    fresh.load_hdf5(str(tmp_path / "w2.h5"))
    np.testing.assert_array_equal(fresh.params["ip"][1].data, b)
    staged = tmp_path / "staged.prototxt"
    staged.write_text(STAGED)
    x = np.ones((1, 2), np.float32)
    assert caffe.Net(str(staged), caffe.TEST, stages=["deploy"]).forward(data=x)["out"].tolist() == [[2, 2]]
    assert caffe.Net(str(staged), caffe.TEST).forward(data=x)["out"].tolist() == [[3, 3]]
    assert "drop" in caffe.Net(str(staged), caffe.TRAIN)._layer_names
    with pytest.raises(TypeError):
        caffe.Net(path)


def test_share_with(ip_net, tmp_path):
    net, w, b, path = ip_net
    other = caffe.Net(path, caffe.TEST)
    other.share_with(net)
    net.params["ip"][0].data[...] = 0.5
    np.testing.assert_array_equal(other.params["ip"][0].data, np.full((4, 3), 0.5, np.float32))


def test_module_surface():
    assert caffe.TRAIN == 0 and caffe.TEST == 1
    assert "Convolution" in caffe.layer_type_list() and "Input" in caffe.layer_type_list()
    assert issubclass(caffe.Layer, object) and hasattr(caffe.Layer, "setup")
    assert caffe.SGDSolver.solver_type == "SGD" and caffe.AdamSolver.solver_type == "Adam"
    from recaffe.proto import caffe_pb2
    assert caffe_pb2.TEST == 1
    n = caffe.NetSpec()
    n.data = caffe.layers.Input(shape=dict(dim=[1, 2]))
    assert "Input" in str(n.to_proto())
    caffe.set_mode_cpu()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caffe._mode._state["warned"] = False
        caffe.set_mode_gpu()
    assert any("CPU" in str(c.message) for c in caught)
    caffe.set_mode_cpu()
    caffe.set_device(0)
    caffe.set_random_seed(7)
    a = np.random.rand()
    caffe.set_random_seed(7)
    assert np.random.rand() == a


def test_caffe_alias_resolves_to_recaffe():
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("from recaffe._alias import install_caffe_alias; install_caffe_alias()\n"
            "import caffe, recaffe, caffe.io\nfrom caffe.proto import caffe_pb2\nimport recaffe.protos.caffe_pb2 as p\n"
            "from caffe import layers as L\n"
            "assert caffe is recaffe and caffe.io is recaffe.io and caffe_pb2 is p and caffe.Net is recaffe.Net\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                       env=dict(os.environ, PYTHONPATH=root))
    assert r.stdout.strip() == "ok", r.stderr


SOLVER_NET = """name: "reg"
layer { name: "data" type: "Input" top: "data" top: "target"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 1 bias_term: false weight_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
"""


def _solver_files(tmp_path, type_name="SGD"):
    (tmp_path / "net.prototxt").write_text(SOLVER_NET)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path}/net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmomentum: 0\nmax_iter: 3\n'
        f'type: "{type_name}"\nsnapshot_prefix: "{tmp_path}/snap"\ndisplay: 0\n')
    return str(tmp_path / "solver.prototxt")


def test_solver_step_feeds_input_blobs_sgd_closed_form(tmp_path):
    s = caffe.get_solver(_solver_files(tmp_path))
    assert type(s).__name__ in ("_Solver", "SGDSolver") and s.iter == 0
    rng = np.random.RandomState(4)
    x, t = rng.randn(4, 3).astype(np.float32), rng.randn(4, 1).astype(np.float32)
    s.net.blobs["data"].data[...] = x
    s.net.blobs["target"].data[...] = t
    s.step(1)
    assert s.iter == 1
    w = s.net.params["ip"][0].data
    np.testing.assert_allclose(w, 0.1 * (t * x).sum(0, keepdims=True) / 4, rtol=1e-5)
    np.testing.assert_allclose(s.net.blobs["loss"].data, (t ** 2).sum() / 8, rtol=1e-5)
    y = x @ w.T
    s.step(1)
    assert s.iter == 2
    np.testing.assert_allclose(s.net.blobs["loss"].data, ((y - t) ** 2).sum() / 8, rtol=1e-5)
    model, state = s.torch_solver.snapshot()
    again = caffe.SGDSolver(_solver_files(tmp_path))
    again.restore(state)
    assert again.iter == 2
    np.testing.assert_array_equal(again.net.params["ip"][0].data, s.net.params["ip"][0].data)


def test_solver_classes_pick_the_update_rule(tmp_path):
    path = _solver_files(tmp_path, "Adam")
    assert caffe.get_solver(path).type == "Adam"
    assert caffe.SGDSolver(path).type == "SGD"
    assert caffe.NesterovSolver(path).type == "Nesterov"
    s = caffe.get_solver(path)
    assert s.net is s.net and s.test_nets == []


PY_LAYER = '''
import recaffe as caffe


class Double(caffe.Layer):
    def setup(self, bottom, top):
        self.factor = float(self.param_str or 2)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.factor * top[0].diff
'''


def test_python_layer_subclassing_caffe_layer(tmp_path, monkeypatch):
    from recaffe.netspec.net.layers.python import allow_python_layers
    (tmp_path / "facade_pylayer.py").write_text(PY_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "py.prototxt").write_text(
        'force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "dbl" type: "Python" bottom: "data" top: "out" '
        'python_param { module: "facade_pylayer" layer: "Double" param_str: "3" } }\n')
    allow_python_layers(True)
    try:
        net = caffe.Net(str(tmp_path / "py.prototxt"), caffe.TEST)
    finally:
        allow_python_layers(None)
    assert isinstance(net.layers[1], caffe.Layer) and net.layers[1].factor == 3.0
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(net.forward(data=x)["out"], 3 * x)
    np.testing.assert_allclose(net.backward(out=np.ones((2, 3), np.float32))["data"], np.full((2, 3), 3.0))


def test_set_input_arrays_memory_data(tmp_path):
    (tmp_path / "mem.prototxt").write_text(
        'layer { name: "mem" type: "MemoryData" top: "data" top: "label" '
        'memory_data_param { batch_size: 2 channels: 1 height: 1 width: 3 } }\n'
        'layer { name: "sum" type: "Reduction" bottom: "data" top: "s" reduction_param { axis: 1 } }\n')
    net = caffe.Net(str(tmp_path / "mem.prototxt"), caffe.TEST)
    data = np.arange(12, dtype=np.float32).reshape(4, 1, 1, 3)
    net.set_input_arrays(data, np.arange(4, dtype=np.float32))
    out = net.forward()
    np.testing.assert_allclose(out["s"], [3, 12])
    np.testing.assert_allclose(net.blobs["label"].data, [0, 1])
    np.testing.assert_allclose(net.forward()["s"], [21, 30])
    (tmp_path / "nomem.prototxt").write_text(IP_NET)
    with pytest.raises(NetError, match="MemoryData"):
        caffe.Net(str(tmp_path / "nomem.prototxt"), caffe.TEST).set_input_arrays(data, np.zeros(4, np.float32))


def test_held_arrays_stay_live_across_forwards(ip_net):
    """Caffe's blob memory persists: an array taken once sees every later forward and backward."""
    net, w, b, _ = ip_net
    out_held = net.blobs["out"].data
    ip_held = net.blobs["ip"].data
    diff_held = net.blobs["ip"].diff
    for k in (1.0, 2.0):
        net.blobs["data"].data[0] = k          # two separate accesses: both writes stay
        net.blobs["data"].data[1] = -k
        net.forward()
        x = np.array([[k] * 3, [-k] * 3], np.float32)
        np.testing.assert_allclose(out_held, 3 * (x @ w.T + b) + 1, rtol=1e-5)
        net.backward(out=np.full((2, 4), k, np.float32))
        np.testing.assert_allclose(diff_held, np.full((2, 4), 3 * k), rtol=1e-6)
    ip_held[...] = 0                            # written into a held array, read by forward(start=)
    np.testing.assert_allclose(net.forward(start="scale")["out"], np.ones((2, 4)))
