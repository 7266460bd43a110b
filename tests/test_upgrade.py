"""Legacy net/solver upgrades (protos/upgrade.py) against Caffe 1.0's upgrade_net_proto_text /
upgrade_solver_proto_text (goldens: tests/oracle/make_upgrade_goldens.py), plus Caffe's fatal cases."""
import os
import warnings

import pytest
from google.protobuf import text_format

from recaffe.protos import caffe_pb2, io, upgrade
from recaffe.protos.errors import ProtoError
from recaffe.protos.forks import ProtoWarning

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "upgrade")
CASES = sorted(f[:-len(".input.prototxt")] for f in os.listdir(GOLDEN) if f.endswith(".input.prototxt"))


def _golden(name, cls):
    with open(os.path.join(GOLDEN, name + ".prototxt")) as f:
        return text_format.Parse(f.read(), cls())


def _diff(a, b):
    import difflib
    return "\n".join(difflib.unified_diff(text_format.MessageToString(a).splitlines(),
                                          text_format.MessageToString(b).splitlines(), "caffe", "ours",
                                          lineterm=""))


def test_all_cases_present():
    assert len(CASES) == 13
    assert {"v0_padding", "v0_data", "v1_layers", "v1_input_dim", "v2_batchnorm"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_upgrade_matches_caffe(name):
    path = os.path.join(GOLDEN, name + ".input.prototxt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProtoWarning)
        if name.startswith("solver"):
            ours, cls = io.read_solver(path), caffe_pb2.SolverParameter
        else:
            ours, cls = io.read_net(path), caffe_pb2.NetParameter
    caffe = _golden(name, cls)
    assert ours == caffe, _diff(caffe, ours)


def test_v0_padding_folded_into_consumer():
    net = io.read_net(os.path.join(GOLDEN, "v0_padding.input.prototxt"))
    names = [lp.name for lp in net.layer]
    assert "pad1" not in names and "pad2" not in names and names[0] == "input"
    pool1 = net.layer[names.index("pool1")]
    assert pool1.bottom == ["conv1"] and pool1.pooling_param.pad == 2
    conv2 = net.layer[names.index("conv2")]
    assert conv2.bottom == ["norm1"] and list(conv2.convolution_param.pad) == [1]
    conv1 = net.layer[names.index("conv1")]
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 0)]


def test_partial_upgrade_warns_like_caffe_logs():
    with pytest.warns(ProtoWarning, match=r"'i2c'.*'kernelsize'.*'im2col'"):
        io.read_net(os.path.join(GOLDEN, "v0_data.input.prototxt"))


def test_upgrade_does_not_modify_its_input_and_is_idempotent():
    src = text_format.Parse(open(os.path.join(GOLDEN, "v1_layers.input.prototxt")).read(),
                            caffe_pb2.NetParameter())
    before = src.SerializeToString()
    out = upgrade.upgrade_net(src)
    assert src.SerializeToString() == before and len(src.layers) == 40
    assert not upgrade.needs_upgrade(out) and io.read_net(out) is out


@pytest.mark.parametrize("text, match", [
    ('layers { layer { name: "x" type: "bogus" } top: "x" }', r"unknown type 'bogus'; expected one of .*conv"),
    ('input: "d" layers { layer { name: "p" type: "padding" pad: 1 } bottom: "d" top: "p" } '
     'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }', r"padding layer 'p' feeds .*'relu'"),
    ('layers { layer { name: "r" type: "relu" } bottom: "nowhere" top: "r" }', r"unknown blob 'nowhere'"),
    ('layers { name: "a" type: RELU } layer { name: "b" type: "ReLU" }', r"both V1 'layers' and V2 'layer'"),
    ('input: "a" input: "b" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4', r"2 net inputs need .*8 input_dim"),
])
def test_caffe_fatal_cases_raise(text, match):
    """Cases where Caffe 1.0 aborts (LOG(FATAL)/CHECK in upgrade_proto.cpp) are one-line ProtoErrors."""
    with pytest.raises(ProtoError, match=match) as e:
        io.read_net(text)
    assert "\n" not in str(e.value)


def test_solver_type_and_type_both_set_is_an_error():
    with pytest.raises(ProtoError, match="both 'solver_type'.*and 'type'"):
        io.read_solver('solver_type: ADAM type: "Adam"')


def test_solver_inline_v1_net_is_upgraded():
    solver = io.read_solver('net_param { layers { name: "ip" type: INNER_PRODUCT blobs_lr: 3 } } '
                            'test_net_param { input: "d" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 2 }')
    assert solver.net_param.layer[0].type == "InnerProduct" and solver.net_param.layer[0].param[0].lr_mult == 3
    assert solver.test_net_param[0].layer[0].type == "Input"
    assert list(solver.test_net_param[0].layer[0].input_param.shape[0].dim) == [1, 1, 1, 2]
