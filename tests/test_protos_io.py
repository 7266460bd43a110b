"""recaffe.protos.io: BlobProto files against real Caffe (goldens: tests/oracle/make_binaryproto_goldens.py),
source detection, atomic writes, one-line errors, fork fields."""
import hashlib
import json
import os
import re
import warnings

import numpy as np
import pytest

from recaffe.protos import caffe_pb2, io
from recaffe.protos.errors import ProtoError
from recaffe.protos.forks import ProtoWarning

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "binaryproto")
ARRAYS = dict(np.load(os.path.join(GOLDEN, "arrays.npz")))
READ_BY_CAFFE = json.load(open(os.path.join(GOLDEN, "read_by_caffe.json")))


def _bits(a):
    return np.asarray(a, np.float32).tobytes()


# ---- BlobProto vs real Caffe -------------------------------------------------------------------------

def test_mean_file_from_compute_image_mean_reads_as_pycaffe_reads_it():
    ours = io.read_blobproto(os.path.join(GOLDEN, "mean.binaryproto"))
    caffe = np.load(os.path.join(GOLDEN, "mean.npy"))
    assert ours.shape == caffe.shape == (1, 3, 5, 7) and ours.dtype == np.float32
    assert _bits(ours) == _bits(caffe)


def test_legacy_write_is_byte_identical_to_compute_image_mean(tmp_path):
    caffe_bytes = open(os.path.join(GOLDEN, "mean.binaryproto"), "rb").read()
    io.write_blobproto(np.load(os.path.join(GOLDEN, "mean.npy")), tmp_path / "m.binaryproto", legacy=True)
    assert (tmp_path / "m.binaryproto").read_bytes() == caffe_bytes


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_array_to_blobproto_bytes_equal_pycaffe(name):
    pycaffe = open(os.path.join(GOLDEN, f"pycaffe_{name}.binaryproto"), "rb").read()
    assert io.array_to_blobproto(ARRAYS[name]).SerializeToString() == pycaffe
    back = io.read_blobproto(os.path.join(GOLDEN, f"pycaffe_{name}.binaryproto"))
    assert back.shape == ARRAYS[name].shape and _bits(back) == _bits(ARRAYS[name])


@pytest.mark.parametrize("fname", sorted(k for k in READ_BY_CAFFE if k.startswith("ours_")))
def test_files_we_write_are_the_ones_caffe_read_correctly(tmp_path, fname):
    """Re-write the array the oracle checked: same bytes, which Caffe read to the same values/shape."""
    rec = READ_BY_CAFFE[fname]
    name = fname[:-len(".binaryproto")].split("_")[-1]
    arr = np.load(os.path.join(GOLDEN, "mean.npy")) if name == "mean" else ARRAYS[name]
    out = tmp_path / fname
    io.write_blobproto(arr, out, legacy="_legacy_" in fname)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == rec["sha256"]
    assert rec["equal"] is True
    expect = (1,) * (4 - arr.ndim) + arr.shape if "_legacy_" in fname else arr.shape
    assert tuple(rec["caffe_shape"]) == expect
    back = io.read_blobproto(out)
    assert back.shape == expect and _bits(back) == _bits(arr)


def test_caffe_cpp_used_our_mean_file_as_imagedata_mean():
    assert READ_BY_CAFFE["cpp_imagedata_mean_file"]["equal"] is True


def test_unpacked_and_double_encodings_and_count_check():
    vals = np.array([1.5, -2.0, 3.25], np.float32)
    # unpacked float `data` (field 5, wire type 5 per value), legacy dims 1x1x1x3
    raw = bytes([0x08, 1, 0x10, 1, 0x18, 1, 0x20, 3]) + b"".join(b"\x2d" + v.tobytes() for v in vals)
    assert _bits(io.read_blobproto(raw)) == _bits(vals.reshape(1, 1, 1, 3))
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([3])
    blob.double_data.extend([0.1, 0.2, 0.3])
    arr = io.blobproto_to_array(blob)
    assert arr.dtype == np.float64 and arr.tolist() == [0.1, 0.2, 0.3]
    blob.ClearField("double_data")
    blob.data.extend([1, 2])
    with pytest.raises(ProtoError, match=r"2 data values for shape \(3,\); expected 3"):
        io.blobproto_to_array(blob)
    with pytest.raises(ProtoError, match="at most 4 axes"):
        io.array_to_blobproto(np.zeros((1, 1, 1, 1, 2)), legacy=True)


def test_big_blob_round_trip_through_caffemodel(tmp_path):
    rng = np.random.RandomState(0)
    w = rng.randn(1000, 1000).astype(np.float32)
    net = caffe_pb2.NetParameter(name="big")
    lp = net.layer.add(name="fc", type="InnerProduct")
    lp.blobs.add().CopyFrom(io.array_to_blobproto(w))
    io.write_binary(net, tmp_path / "big.caffemodel")
    back = io.read_net(str(tmp_path / "big.caffemodel"))
    assert back.layer[0].name == "fc" and _bits(io.blobproto_to_array(back.layer[0].blobs[0])) == _bits(w)


def test_datum_round_trip():
    img = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    d = io.array_to_datum(img, label=7)
    assert (d.channels, d.height, d.width, d.label) == (2, 3, 4, 7) and d.data == img.tobytes()
    assert np.array_equal(io.datum_to_array(d), img)
    f = np.linspace(-1, 1, 6, dtype=np.float32).reshape(1, 2, 3)
    assert _bits(io.datum_to_array(io.array_to_datum(f))) == _bits(f)


# ---- sources, binary detection, atomic writes ---------------------------------------------------------

NET_TEXT = 'name: "n"\nlayer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'


def test_read_net_accepts_path_text_bytes_binary_and_message(tmp_path):
    expect = io.read_net(NET_TEXT)
    assert expect.layer[0].type == "ReLU"
    (tmp_path / "n.prototxt").write_text(NET_TEXT)
    io.write_binary(expect, tmp_path / "n.caffemodel")
    io.write_binary(expect, tmp_path / "weights_noext")
    for src in (str(tmp_path / "n.prototxt"), tmp_path / "n.prototxt", NET_TEXT.encode(),
                str(tmp_path / "n.caffemodel"), str(tmp_path / "weights_noext"), expect.SerializeToString(),
                expect):
        assert io.read_net(src) == expect, src


def test_write_text_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.prototxt"
    target.write_text("old")
    net = io.read_net(NET_TEXT)

    def boom(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(ProtoError, match="out.prototxt: cannot write: No space left on device"):
        io.write_text(net, target)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.prototxt"]
    monkeypatch.undo()
    io.write_text(net, target)
    assert io.read_net(str(target)) == net and os.listdir(tmp_path) == ["out.prototxt"]


# ---- one-line errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, pattern", [
    ('layer { name: "a"\n  pooling_param { pool: MAXX } }',
     r"^<string>:2:19: invalid value MAXX for enum caffe\.PoolingParameter\.PoolMethod "
     r".*expected one of MAX, AVE, STOCHASTIC$"),
    ('layer {\n  convolution_param { num_ouput: 3 } }',
     r"^<string>:2:23: unknown field 'num_ouput' in caffe\.ConvolutionParameter; did you mean 'num_output'\?"),
    ('nett: "x"', r"^<string>:1:1: unknown field 'nett' in caffe\.NetParameter; valid fields: debug_info, .*state"),
    ('layer {\n name: "a"\n', r"^<string>:2:\d+: syntax error: expected \"}\""),
    ('layer { name: 1 2 }', r"^<string>:1:15: syntax error: expected string but found: '1'$"),
])
def test_parse_errors_are_one_line_with_position(text, pattern):
    with pytest.raises(ProtoError) as e:
        io.read_net(text)
    assert "\n" not in str(e.value) and re.search(pattern, str(e.value)), str(e.value)


def test_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.prototxt"
    p.write_text('layer {\n  type: "ReLU"\n  relu_param { negative_slop: 0.1 }\n}\n')
    with pytest.raises(ProtoError, match=re.escape(str(p)) + r":3:16: unknown field 'negative_slop'.*'negative_slope'"):
        io.read_net(str(p))
    with pytest.raises(ProtoError, match=r"missing\.prototxt: cannot read: No such file"):
        io.read_net(str(tmp_path / "missing.prototxt"))
    (tmp_path / "garbage.caffemodel").write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(ProtoError, match=r"garbage\.caffemodel: not a binary caffe\.NetParameter"):
        io.read_net(str(tmp_path / "garbage.caffemodel"))


# ---- fork tolerance ------------------------------------------------------------------------------------

DENSENET_POOL = ('layer {\n  name: "pool1"\n  type: "Pooling"\n  bottom: "x"\n  top: "y"\n'
                 '  pooling_param {\n    pool: MAX\n    kernel_size: 3\n    stride: 2\n    ceil_mode: %s\n  }\n}\n')


@pytest.mark.parametrize("value, mode", [("false", caffe_pb2.PoolingParameter.FLOOR),
                                         ("true", caffe_pb2.PoolingParameter.CEIL)])
def test_ceil_mode_fork_field_maps_to_round_mode(tmp_path, value, mode):
    p = tmp_path / "densenet.prototxt"
    p.write_text(DENSENET_POOL % value)
    with pytest.warns(ProtoWarning, match=re.escape(str(p)) + r":10:5: fork field 'ceil_mode: %s'" % value):
        net = io.read_net(str(p))
    pp = net.layer[0].pooling_param
    assert pp.HasField("round_mode") and pp.round_mode == mode and pp.kernel_size == 3 and pp.stride == 2


def test_bad_ceil_mode_value_is_an_error():
    with pytest.raises(ProtoError, match=r"<string>:10:5: fork field 'ceil_mode'.*'maybe'; expected true or false"):
        io.read_net(DENSENET_POOL % "maybe")


def test_unknown_fields_error_or_dropped_when_lenient():
    text = ('layer { name: "p" type: "MarginInnerProduct" bottom: "x" top: "y"\n'
            '  margin_inner_product_param { num_output: 10 type: QUADRUPLE }\n}\n'
            'layer { name: "l" type: "SoftmaxWithLoss" loss_param { normalization: PRE_FIXED ignore_label: 3 } }\n')
    with pytest.raises(ProtoError, match=r"^<string>:2:3: unknown field 'margin_inner_product_param' in caffe\.LayerParameter"):
        io.read_net(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = io.read_net(text, lenient=True)
    msgs = [str(w.message) for w in caught if issubclass(w.category, ProtoWarning)]
    assert any(re.match(r"<string>:2:3: dropped unknown field 'margin_inner_product_param'", m) for m in msgs), msgs
    assert any(re.match(r"<string>:4:\d+: dropped field 'normalization' with unknown enum value", m) for m in msgs)
    assert [lp.type for lp in net.layer] == ["MarginInnerProduct", "SoftmaxWithLoss"]
    assert not net.layer[1].loss_param.HasField("normalization") and net.layer[1].loss_param.ignore_label == 3


def test_solverstate_binary_round_trip(tmp_path):
    state = caffe_pb2.SolverState(iter=48, learned_net="snap_iter_48.caffemodel", current_step=2)
    state.history.add().CopyFrom(io.array_to_blobproto(np.array([[0.5, -1.0]], np.float32)))
    io.write_binary(state, tmp_path / "s.solverstate")
    back = io.read_binary(str(tmp_path / "s.solverstate"), caffe_pb2.SolverState)
    assert back == state and io.blobproto_to_array(back.history[0]).tolist() == [[0.5, -1.0]]
    with pytest.raises(ProtoError, match=r"s\.solverstate: not a binary caffe\.NetParameter"):
        (tmp_path / "s.solverstate").write_bytes(b"\x0a\xff")
        io.read_net(str(tmp_path / "s.solverstate"))
