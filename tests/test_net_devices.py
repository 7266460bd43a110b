"""A Net owns its placement: ``net.to(device)`` moves weights AND the tops of its data layers (Input
feeds, DummyData refills, Data, HDF5Data, MemoryData, Python layers), ``Net.reshape`` and numpy
inputs follow the net. No GPU here: the ``meta`` device (shapes only) stands for "not the CPU", and
``net.to(torch.float64)`` for "not what the layers build" (every top must come out float64)."""
import os
import sys

import numpy as np
import pytest
import torch

from recaffe.netspec.net.net import Net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "models", "zoo")
DEPLOYS = sorted(d for d in os.listdir(ZOO) if os.path.exists(os.path.join(ZOO, d, "deploy.prototxt")))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", DEPLOYS)
def test_zoo_deploy_forward_backward_on_meta(name):
    net = Net(os.path.join(ZOO, name, "deploy.prototxt"), phase="TEST").to("meta")
    x = {n: torch.empty(net.blob_shapes[n], device="meta", requires_grad=True) for n in net.inputs}
    out = net(**x)
    assert out and all(v.device.type == "meta" and tuple(v.shape) == net.blob_shapes[k] for k, v in out.items())
    sum(v.sum() for v in out.values()).backward()
    assert all(v.grad is not None and v.grad.device.type == "meta" for v in x.values())
    grads = [p.grad for l in net.layers for p in l.blobs if p.requires_grad]
    assert grads and all(g is not None and g.device.type == "meta" for g in grads)


def test_train_net_with_a_data_layer_on_meta(tmp_path):
    import ddp_helpers as h
    db = h.make_db(tmp_path, n=32)
    h.write_solver(tmp_path, db)
    net = Net(str(tmp_path / "run" / "net.prototxt"), phase="TRAIN")
    for layer in net.layers:
        if hasattr(layer, "num_workers"):
            layer.num_workers = 0
    net.to("meta")
    out = net(end="ip2")         # (the losses read label counts on the host: not on meta)
    assert net.blobs["data"].device.type == "meta" and net.blobs["label"].device.type == "meta"
    assert net.blobs["data"].shape == (16, 1, 24, 24)
    out["ip2"].sum().backward()
    assert net.params["conv1"][0].grad.device.type == "meta"
    assert net.device.type == "meta"


def test_reshape_allocates_on_the_nets_device():
    net = Net(os.path.join(ZOO, "bvlc_reference_caffenet", "deploy.prototxt"), phase="TEST").to("meta")
    net.reshape(data=(3, 3, 227, 227))
    assert net.blobs["prob"].shape == (3, 1000) and net.blobs["prob"].device.type == "meta"
    assert net.blob_shapes["fc8"] == (3, 1000)


NET = """name: "moves" force_backward: true
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "dummy" type: "DummyData" top: "g" top: "c"
  dummy_data_param {{ shape {{ dim: 2 dim: 3 }} data_filler {{ type: "gaussian" std: 1 }}
                     data_filler {{ type: "constant" value: 2 }} }} }}
layer {{ name: "mem" type: "MemoryData" top: "m" top: "ml"
  memory_data_param {{ batch_size: 2 channels: 3 height: 1 width: 1 }} }}
layer {{ name: "h5" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ source: "{h5list}" batch_size: 2 }} }}
layer {{ name: "src" type: "Python" top: "p" python_param {{ module: "pydevice_layers" layer: "Source" }} }}
layer {{ name: "scale" type: "Python" bottom: "x" top: "xs"
  python_param {{ module: "pylayer_demo" layer: "ScaledIdentity" param_str: '{{"scale": 3}}' }} }}
layer {{ name: "sum" type: "Eltwise" bottom: "xs" bottom: "g" bottom: "c" top: "s" }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "p" top: "loss" }}
"""

SOURCE = '''from recaffe.netspec.net.layers.python import PythonLayer


class Source(PythonLayer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(2, 3)

    def forward(self, bottom, top):
        top[0].data[...] = 0.5

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_every_data_top_follows_the_net(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    from recaffe.netspec.net.layers.python import ENV_VAR
    monkeypatch.setenv(ENV_VAR, "1")
    (tmp_path / "pydevice_layers.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["data"] = np.arange(12, dtype=np.float32).reshape(4, 3)
        f["label"] = np.arange(4, dtype=np.float32)
    (tmp_path / "list.txt").write_text(str(tmp_path / "d.h5") + "\n")
    net = Net(NET.format(h5list=tmp_path / "list.txt"), phase="TRAIN")
    net.layer("mem").set_input_arrays(np.ones((2, 3, 1, 1), np.float32), np.zeros(2, np.float32))
    net.to(torch.float64)
    assert net.dtype == torch.float64
    x = np.arange(6, dtype=np.float32).reshape(2, 3)      # numpy input: becomes the net's dtype
    net(x=x)
    for name in ("x", "g", "c", "m", "ml", "data", "label", "p", "xs", "s", "loss"):
        assert net.blobs[name].dtype == torch.float64, name
    want = 3 * x + net.blobs["g"].numpy() + 2
    np.testing.assert_allclose(net.blobs["s"].detach().numpy(), want, rtol=1e-6)   # the Python layer computes in float32 (Caffe blobs)
    net.backward()
    assert net.input_blobs["x"].grad.dtype == torch.float64
    np.testing.assert_allclose(net.input_blobs["x"].grad.numpy(), 3 * (want - 0.5) / 2, rtol=1e-6)
