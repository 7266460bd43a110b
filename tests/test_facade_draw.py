"""tools/draw_net.py and recaffe.draw: DOT text with one box per layer (in-place layers inline), one
octagon per blob and one edge per bottom/top; phase filtering; PNG through Graphviz or a one-line error."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import recaffe as caffe
from recaffe.protos.io import read_net
from recaffe.tools import draw_net

NET = """name: "drawn"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 2 kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 } }
layer { name: "drop" type: "Dropout" bottom: "pool1" top: "pool1" include { phase: TRAIN } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc" param { lr_mult: 3 }
  inner_product_param { num_output: 2 } }
"""


def test_dot_structure(tmp_path, capsys):
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    out = tmp_path / "net.dot"
    assert draw_net.main([str(proto), str(out), "--rankdir", "TB", "--display_lrm"]) == 0
    dot = out.read_text()
    assert dot.startswith('digraph "drawn" {') and 'rankdir="TB"' in dot
    layers = re.findall(r'^  "(layer_\d+_\w+)" \[', dot, re.M)
    assert layers == ["layer_0_data", "layer_1_conv1", "layer_2_relu1", "layer_3_pool1", "layer_4_drop", "layer_5_fc"]
    edges = re.findall(r'^  "(\w+)" -> "(\w+)";', dot, re.M)
    assert ("layer_1_conv1", "blob_conv1") in edges and ("blob_conv1", "layer_2_relu1") in edges
    assert not any(a == "layer_2_relu1" for a, _ in edges)          # in-place: drawn inline
    assert len(edges) == 5 + 4                                        # 5 bottoms, 4 non-in-place tops
    assert "kernel size: 3\\nstride: 2\\npad: 0" in dot and "pool=MAX" in dot and "lr mult: 3" in dot
    assert caffe.draw.draw_net(read_net(str(proto)), "TB", "dot", display_lrm=True).decode() == dot
    caffe.draw.draw_net_to_file(read_net(str(proto)), str(tmp_path / "test.dot"), phase=caffe.TEST)
    assert "layer_4_drop" not in (tmp_path / "test.dot").read_text()


def test_png_needs_graphviz(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-m", "recaffe.tools.draw_net", str(proto), str(tmp_path / "net.png")],
                       capture_output=True, text=True, cwd=root, env=dict(os.environ, PYTHONPATH=root))
    if shutil.which("dot") is None:
        assert r.returncode == 2 and "Graphviz 'dot' is not installed" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "net.png").exists()
    else:
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_flags(tmp_path):
    from recaffe.protos.errors import RecaffeError
    with pytest.raises(RecaffeError, match="rankdir"):
        draw_net.main([str(tmp_path / "x"), str(tmp_path / "y.dot"), "--rankdir", "XX"])
