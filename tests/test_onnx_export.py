"""ONNX export (netspec.net.export, tools/export_onnx.py): zoo deploy nets with random weights, exported
once with a dynamic batch, run by onnxruntime at batch 1 and 3 against recaffe's own outputs (the
reference: recaffe's eager forward, itself checked against Caffe elsewhere); input/output names are
the blob names; nets ONNX cannot express are refused with one line. Skipped without the onnx extra."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from recaffe.netspec.net.export import ExportError, compare, export_onnx, run_onnxruntime  # noqa: E402
from recaffe.netspec.net.net import Net  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_amp import deploy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def one_thread():
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", ["bvlc_reference_caffenet", "bvlc_googlenet", "resnet50"])
def test_zoo_net_exports_with_a_dynamic_batch(tmp_path, name):
    net = deploy(name)
    path = tmp_path / f"{name}.onnx"
    report = export_onnx(net, path, batch="dynamic", check=False, optimize=False)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == net.inputs
    assert [o.name for o in model.graph.output] == net.outputs
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value                        # a symbolic batch axis
    for batch in (1, 3):
        diff = compare(net, path, batch, tolerance=1e-5)
        assert diff < 1e-5, (batch, diff)
    assert report.batch == "dynamic"


def tiny_deploy(tmp_path, extra=""):
    text = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "norm" type: "LRN" bottom: "conv" top: "norm" lrn_param { local_size: 3 alpha: 0.5 } }
layer { name: "fc" type: "InnerProduct" bottom: "norm" top: "fc"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
""" + extra
    path = tmp_path / "deploy.prototxt"
    path.write_text(text)
    return str(path)


def test_fixed_batch_and_the_report(tmp_path):
    net = Net(tiny_deploy(tmp_path))
    report = export_onnx(net, tmp_path / "t.onnx", batch=4)
    model = onnx.load(str(tmp_path / "t.onnx"))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert report.checked_batch == 4 and report.max_diff < 1e-6
    assert report.line().startswith(f"wrote {tmp_path / 't.onnx'} (opset 18, batch 4); onnxruntime vs recaffe "
                                    "at batch 4: max abs difference ")
    x = np.random.RandomState(0).randn(4, 3, 8, 8).astype(np.float32)
    import torch
    with torch.no_grad():
        want = net(data=x)["prob"].numpy()
    np.testing.assert_allclose(run_onnxruntime(tmp_path / "t.onnx", {"data": x})["prob"], want, atol=1e-6)


REFUSE = {
    "Python": ('layer { name: "py" type: "Python" bottom: "prob" top: "py" '
               'python_param { module: "pylayer_demo" layer: "ScaledIdentity" param_str: \'{"scale": 2}\' } }',
               "layer 'py' (Python) cannot be exported to ONNX: it runs numpy code"),
    "loss": ('layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 2 } } }\n'
             'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }',
             "layer 'loss' (SoftmaxWithLoss) cannot be exported to ONNX: a loss (training only)"),
    "data": ('layer { name: "dd" type: "DummyData" top: "dd" dummy_data_param { shape { dim: 2 } } }',
             "layer 'dd' (DummyData) cannot be exported to ONNX: a data layer (it reads files); use an Input layer"),
}


@pytest.mark.parametrize("case", sorted(REFUSE))
def test_refusals_are_one_line(tmp_path, case, monkeypatch):
    from recaffe.netspec.net.layers.python import ENV_VAR
    monkeypatch.setenv(ENV_VAR, "1")
    extra, msg = REFUSE[case]
    net = Net(tiny_deploy(tmp_path, extra))
    with pytest.raises(ExportError) as e:
        export_onnx(net, tmp_path / "x.onnx")
    assert str(e.value) == f"net 'tiny': {msg}; export a deploy net (Input layers feeding the model layers only)"
    assert not (tmp_path / "x.onnx").exists()


def test_train_phase_is_refused(tmp_path):
    net = Net(tiny_deploy(tmp_path), phase="TRAIN")
    with pytest.raises(ExportError, match=r"^net 'tiny': phase TRAIN cannot be exported to ONNX; export the TEST"):
        export_onnx(net, tmp_path / "x.onnx")


def _tool(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "recaffe.tools.export_onnx", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_command_line(tmp_path):
    model = tiny_deploy(tmp_path)
    net = Net(model)
    net.save_weights(str(tmp_path / "w.caffemodel"))
    p = _tool(f"-model={model}", f"-weights={tmp_path / 'w.caffemodel'}", str(tmp_path / "out.onnx"), "-batch", "dynamic")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"wrote {tmp_path / 'out.onnx'} (opset 18, dynamic batch); onnxruntime vs recaffe at "
                               "batch 3: max abs difference ")
    assert p.stderr == ""
    bad = tiny_deploy(tmp_path, REFUSE["loss"][0])
    p = _tool(f"-model={bad}", str(tmp_path / "bad.onnx"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("export_onnx: error: net 'tiny': layer 'loss' (SoftmaxWithLoss) cannot be exported")
    p = _tool(f"-model={model}", "-batch=zero")
    assert p.returncode == 2 and "expected a positive integer or 'dynamic'" in p.stderr


SSD_HEAD = """name: "ssd_head"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "norm" type: "Normalize" bottom: "conv" top: "norm"
  norm_param { across_spatial: false channel_shared: false scale_filler { type: "constant" value: 20 } } }
layer { name: "loc" type: "Convolution" bottom: "norm" top: "loc"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loc_perm" type: "Permute" bottom: "loc" top: "loc_perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "loc_flat" type: "Flatten" bottom: "loc_perm" top: "loc_flat" flatten_param { axis: 1 } }
layer { name: "prior" type: "PriorBox" bottom: "norm" bottom: "data" top: "prior"
  prior_box_param { min_size: 4 max_size: 8 aspect_ratio: 2 variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: 1 } }
"""


def test_ssd_fork_layers_export(tmp_path):
    """SSD's Normalize, Permute and PriorBox are plain torch ops: a dynamic-batch model matches the net
    at batch 1 and 3 (PriorBox's top is a constant of the feature-map size)."""
    model = tmp_path / "ssd_head.prototxt"
    model.write_text(SSD_HEAD)
    net = Net(str(model))
    export_onnx(net, tmp_path / "ssd.onnx", batch="dynamic", check=False, optimize=False)
    for batch in (1, 3):
        assert compare(net, tmp_path / "ssd.onnx", batch, tolerance=1e-5) < 1e-5


FORK_REFUSE = {
    "ROIPooling": ('layer { name: "rois" type: "Input" top: "rois" input_param { shape { dim: 3 dim: 5 } } }\n'
                   'layer { name: "roi" type: "ROIPooling" bottom: "conv" bottom: "rois" top: "roi" '
                   'roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 1 } }',
                   "layer 'roi' (ROIPooling) cannot be exported to ONNX: its bins depend on the ROI values"),
    "DetectionOutput": ('layer { name: "conf" type: "Input" top: "conf" input_param { shape { dim: 2 dim: 1152 } } }\n'
                        'layer { name: "det" type: "DetectionOutput" bottom: "loc_flat" bottom: "conf" bottom: "prior" '
                        'top: "det" detection_output_param { num_classes: 2 nms_param { nms_threshold: 0.45 } } }',
                        "layer 'det' (DetectionOutput) cannot be exported to ONNX: its non-maximum suppression "
                        "runs in numpy"),
}


@pytest.mark.parametrize("case", sorted(FORK_REFUSE))
def test_fork_layers_with_host_code_are_refused_in_one_line(tmp_path, case):
    extra, msg = FORK_REFUSE[case]
    model = tmp_path / "fork.prototxt"
    model.write_text(SSD_HEAD + extra + "\n")
    net = Net(str(model) if case == "DetectionOutput" else tiny_deploy(tmp_path, extra))
    with pytest.raises(ExportError) as e:
        export_onnx(net, tmp_path / "x.onnx")
    assert str(e.value).startswith(f"net '{net.name}': {msg}") and "\n" not in str(e.value)
    assert not (tmp_path / "x.onnx").exists()
