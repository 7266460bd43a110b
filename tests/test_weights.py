"""Weights I/O against real Caffe (goldens by tests/oracle/make_weights_goldens.py): reading files Caffe
wrote (V2, HDF5) or read (V1 with legacy 4-D blobs), writing files Caffe reads, .pth, errors."""
import hashlib
import os

import numpy as np
import pytest
import torch

from recaffe.netspec import Net
from recaffe.netspec.weights import wire
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import WeightsError

G = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "weights")
PROTO = os.path.join(G, "small.prototxt")


def golden(name):
    with np.load(os.path.join(G, name), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def values(net):
    return {k: v.numpy() for k, v in net.caffe_state_dict().items()}


def set_from(net, vals):
    with torch.no_grad():
        for n, blobs in net.params.items():
            for i, p in enumerate(blobs):
                p.copy_(torch.from_numpy(vals["%s.%d" % (n, i)]))


def test_load_caffe_written_caffemodel_exactly():
    g = golden("caffe_small.npz")
    net = Net(PROTO, weights=os.path.join(G, "caffe_small.caffemodel"))
    ours = values(net)
    assert sorted(ours) == sorted(g)
    for k in g:
        np.testing.assert_array_equal(ours[k], g[k], err_msg=k)
    assert net.params["ip1"][0] is net.params["ip2"][0]


def test_load_caffe_written_hdf5():
    g = golden("caffe_small.npz")
    net = Net(PROTO)
    net.load_weights(os.path.join(G, "caffe_small.caffemodel.h5"))
    ours = values(net)
    for k in g:
        np.testing.assert_array_equal(ours[k], g[k], err_msg=k)


def test_writer_is_byte_identical_to_caffe(tmp_path):
    net = Net(PROTO)
    set_from(net, golden("caffe_small.npz"))
    out = tmp_path / "ours.caffemodel"
    net.save_weights(str(out))
    with open(os.path.join(G, "caffe_small.caffemodel"), "rb") as f:
        assert out.read_bytes() == f.read()


def test_caffe_reads_what_we_write(tmp_path):
    """Same recipe as make_weights_goldens.ours(): Caffe read that file; ours must still write it."""
    g = golden("ours_read_by_caffe.npz")
    net = Net(PROTO)
    rng = np.random.RandomState(5)
    with torch.no_grad():
        for n, blobs in net.params.items():
            for p in blobs:
                p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    out = tmp_path / "ours.caffemodel"
    net.save_weights(str(out))
    raw = out.read_bytes()
    assert len(raw) == int(g["size"]) and hashlib.sha256(raw).hexdigest() == str(g["sha256"])
    msg = caffe_pb2.NetParameter.FromString(raw)     # protobuf's own parser agrees with Caffe
    parsed = {"%s.%d" % (l.name, i): np.array(b.data, np.float32).reshape(tuple(b.shape.dim))
              for l in msg.layer for i, b in enumerate(l.blobs)}
    for k, v in values(net).items():
        np.testing.assert_array_equal(v, g[k], err_msg=k)
        np.testing.assert_array_equal(parsed[k], g[k], err_msg=k)


def test_v1_file_with_legacy_blobs_read_as_caffe_does():
    g = golden("v1_small.npz")
    net = Net(PROTO)
    ignored = net.load_weights(os.path.join(G, "v1_small.caffemodel"))
    ours = values(net)
    for k in g:     # includes 'fresh', absent from the file: keeps its constant fillers
        np.testing.assert_array_equal(ours[k], g[k], err_msg=k)
    assert ignored == ["gone"]     # a file layer the net lacks is ignored, as Caffe does


def _legacy_file(tmp_path, layer, dims_list):
    msg = caffe_pb2.NetParameter()
    l = msg.layer.add(name=layer)
    for dims in dims_list:
        b = l.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
        b.data.extend([0.5] * int(np.prod(dims)))
    path = tmp_path / "legacy.caffemodel"
    path.write_bytes(msg.SerializeToString())
    return str(path)


def test_legacy_dims_compare_right_aligned(tmp_path):
    net = Net(PROTO)
    net.load_weights(_legacy_file(tmp_path, "fresh", [(1, 1, 2, 5), (1, 1, 1, 2)]))
    assert torch.equal(net.params["fresh"][0].detach(), torch.full((2, 5), 0.5))
    with pytest.raises(WeightsError, match="param 0 weights from layer 'fresh': shape mismatch; file blob "
                                           "shape \\(1, 1, 5, 2\\) \\(legacy.*net blob shape \\(2, 5\\)"):
        net.load_weights(_legacy_file(tmp_path, "fresh", [(1, 1, 5, 2), (1, 1, 1, 2)]))


def test_shape_and_count_mismatch_errors(tmp_path):
    other = Net(PROTO)
    path = tmp_path / "w.caffemodel"
    other.save_weights(str(path))
    text = open(PROTO).read().replace("num_output: 2", "num_output: 3")
    with pytest.raises(WeightsError, match="layer 'fresh'.*shape \\(2, 5\\), net blob shape \\(3, 5\\)"):
        Net(text, weights=str(path))
    text = open(PROTO).read().replace("num_output: 2", "num_output: 2 bias_term: false")
    with pytest.raises(WeightsError, match="number of blobs for layer 'fresh': file has 2, net has 1"):
        Net(text, weights=str(path))


def test_bad_files(tmp_path):
    net = Net(PROTO)
    with pytest.raises(WeightsError, match="nope.caffemodel: cannot read"):
        net.load_weights(str(tmp_path / "nope.caffemodel"))
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\xa2\x06\xff\xff\x01")
    with pytest.raises(WeightsError, match="not a valid .caffemodel"):
        net.load_weights(str(bad))


def test_pth_round_trip(tmp_path):
    net = Net(PROTO, weights=os.path.join(G, "caffe_small.caffemodel"))
    path = tmp_path / "w.pth"
    net.save_weights(str(path))
    state = torch.load(str(path), weights_only=True)
    assert list(state)[:3] == ["conv1.0", "conv1.1", "bn1.0"]
    fresh = Net(PROTO)
    fresh.load_weights(str(path))
    for k, v in values(net).items():
        np.testing.assert_array_equal(values(fresh)[k], v)
    state["fresh.0"] = torch.zeros(3, 5)
    torch.save(state, str(path))
    with pytest.raises(WeightsError, match="layer 'fresh'.*\\(3, 5\\).*\\(2, 5\\)"):
        fresh.load_weights(str(path))


def test_writes_are_atomic(tmp_path, monkeypatch):
    net = Net(PROTO)
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b"old")

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(wire, "write_caffemodel", boom)
    with pytest.raises(RuntimeError):
        net.save_weights(str(path))
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["w.caffemodel"]


def test_unpacked_float_data_accepted(tmp_path):
    """proto2 parsers must accept the unpacked encoding of a packed field (spec 1.1)."""
    vals = np.arange(10, dtype=np.float32)
    body = b"".join(wire._key(5, 5) + v.tobytes() for v in vals)
    dims = wire.encode_varint(2) + wire.encode_varint(5)
    body += wire._key(7, 2) + wire.encode_varint(len(dims) + 2) + wire._key(1, 2) + wire.encode_varint(len(dims)) + dims
    blob = wire._key(7, 2) + wire.encode_varint(len(body)) + body
    bias = caffe_pb2.BlobProto(data=[1, 2])
    bias.shape.dim.append(2)
    bias = bias.SerializeToString()
    name = wire._key(1, 2) + wire.encode_varint(5) + b"fresh"
    layer = name + blob + wire._key(7, 2) + wire.encode_varint(len(bias)) + bias
    path = tmp_path / "u.caffemodel"
    path.write_bytes(wire._key(100, 2) + wire.encode_varint(len(layer)) + layer)
    net = Net(PROTO, weights=str(path))
    np.testing.assert_array_equal(net.params["fresh"][0].detach().numpy(), vals.reshape(2, 5))
    np.testing.assert_array_equal(net.params["fresh"][1].detach().numpy(), [1, 2])
