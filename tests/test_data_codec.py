"""Datum codec, mean files and the DataTransformer's rules (src/caffe/data_transformer.cpp) by
closed form; pixel parity of decoding is in test_data_tools / test_data_layers (Caffe goldens)."""
import os

import numpy as np
import pytest
import torch

from recaffe.netspec.data.datum import array_to_datum, datum_to_array, encoded_datum, parse_datum
from recaffe.netspec.data.image import decode_image, encode_image
from recaffe.netspec.data.meanfile import read_mean, write_mean
from recaffe.netspec.data.transformer import DataTransformer
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import DataError

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "data")


def test_raw_datum_layout_is_chw():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    d = parse_datum(array_to_datum(arr, 7).SerializeToString())
    assert (d.channels, d.height, d.width, d.label) == (2, 3, 4, 7)
    assert d.data == arr.tobytes()                                  # C x H x W bytes
    assert np.array_equal(datum_to_array(d), arr)
    f = array_to_datum(arr.astype(np.float32) / 3, 1)
    assert not f.data and len(f.float_data) == 24
    assert np.array_equal(datum_to_array(f), arr.astype(np.float32) / 3)


def test_raw_and_encoded_datum_bytes_match_protobuf():
    """Our one-copy serialisers (convert_imageset) == protobuf's bytes of Caffe's datums, any label
    (negative int32: 10-byte varints), any shape, strided (transposed) pixels."""
    from recaffe.netspec.data.datum import encoded_datum_bytes, raw_datum_bytes
    rng = np.random.default_rng(0)
    for shape in [(3, 5, 7), (1, 200, 300), (4, 1, 1)]:
        for label in [0, 1, 127, 128, -1, 2 ** 31 - 1, -2 ** 31]:
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            d = array_to_datum(a, label)
            d.encoded = False                                   # CVMatToDatum sets it explicitly
            assert raw_datum_bytes(a, label) == d.SerializeToString()
            hwc = np.ascontiguousarray(a.transpose(1, 2, 0))    # OpenCV's layout, viewed as CHW
            assert raw_datum_bytes(hwc.transpose(2, 0, 1), label) == d.SerializeToString()
            assert encoded_datum_bytes(a.tobytes(), label) == encoded_datum(a.tobytes(), label).SerializeToString()


def test_bad_datums():
    d = caffe_pb2.Datum(channels=3, height=2, width=2, data=b"\0" * 5)
    with pytest.raises(DataError, match="5 bytes, channels\\*height\\*width = 12"):
        datum_to_array(d, where="db: key 'k'")
    with pytest.raises(DataError, match="cannot decode image"):
        datum_to_array(encoded_datum(b"garbage", 0), where="db: key 'k'")


def test_png_roundtrip_is_bgr():
    bgr = np.random.default_rng(0).integers(0, 256, (3, 5, 6), dtype=np.uint8)
    data = encode_image(bgr, "png")
    assert np.array_equal(decode_image(data), bgr)
    from PIL import Image
    import io
    rgb = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(rgb[:, :, 0], bgr[2])                      # channel 0 is blue
    grey = encode_image(bgr[:1], "png")
    assert decode_image(grey, "as_stored").shape == (1, 5, 6)
    assert np.array_equal(decode_image(grey, "color"), np.repeat(bgr[:1], 3, 0))


def test_mean_file_roundtrip_and_caffe_layout(tmp_path):
    m = read_mean(os.path.join(GOLDEN, "mean.binaryproto"))
    assert m.shape == (3, 19, 23) and m.dtype == np.float32
    p = str(tmp_path / "m.binaryproto")
    write_mean(m, p)
    assert open(p, "rb").read() == open(os.path.join(GOLDEN, "mean.binaryproto"), "rb").read()
    (tmp_path / "bad").write_bytes(b"\xff\xff")
    with pytest.raises(DataError, match="bad"):
        read_mean(str(tmp_path / "bad"))


def _tp(**kw):
    tp = caffe_pb2.TransformationParameter()
    for k, v in kw.items():
        if k == "mean_value":
            tp.mean_value.extend(v)
        else:
            setattr(tp, k, v)
    return tp


def test_scale_after_mean_and_centre_crop():
    x = np.arange(3 * 5 * 6, dtype=np.uint8).reshape(3, 5, 6)
    out = DataTransformer(_tp(crop_size=3, mean_value=[1, 2, 3], scale=0.5), "TEST").transform(x)
    ref = (x[:, 1:4, 1:4].astype(np.float32) - np.array([1, 2, 3], np.float32)[:, None, None]) * np.float32(0.5)
    assert np.array_equal(out, ref)                                  # h_off = (5-3)//2, w_off = (6-3)//2
    one = DataTransformer(_tp(mean_value=[10]), "TEST").transform(x)
    assert np.array_equal(one, x.astype(np.float32) - 10)            # one mean_value for all channels
    tf = DataTransformer(_tp(mean_value=[1, 2, 3], scale=0.5), "TEST")
    t = torch.from_numpy(x[None].copy())
    assert np.array_equal(tf.finish(t, [(False, 0, 0)], use_numpy=False).numpy(), tf.finish(t, [(False, 0, 0)]).numpy())


def test_mean_file_sampled_at_crop_offset_and_mirrored(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (2, 6, 7), dtype=np.uint8)
    mean = np.random.default_rng(2).random((2, 6, 7), dtype=np.float32) * 100
    p = str(tmp_path / "m.binaryproto")
    write_mean(mean, p)
    tf = DataTransformer(_tp(crop_size=4, mirror=True, mean_file=p, scale=2.0), "TRAIN")
    plans = [(True, 1, 2), (False, 2, 3)]
    pieces = torch.from_numpy(np.stack([tf.crop_mirror(x, pl).copy() for pl in plans]))
    out = tf.finish(pieces, plans).numpy()
    assert np.array_equal(tf.finish(pieces, plans, use_numpy=False).numpy(), out)   # the GPU code path
    for o, (m, h, w) in zip(out, plans):
        ref = (x[:, h:h + 4, w:w + 4] - mean[:, h:h + 4, w:w + 4]) * np.float32(2.0)
        assert np.array_equal(o, ref[:, :, ::-1] if m else ref)


def test_mean_file_finish_same_with_and_without_opencv(tmp_path, monkeypatch):
    """The OpenCV per-plane subtract (uint8 crops, mean file) == numpy's cast-then-subtract, which
    runs when OpenCV is absent: grey and colour, mirrored or not, crops straight from the source."""
    import recaffe.netspec.data.transformer as T
    rng = np.random.default_rng(5)
    for c in (1, 3):
        x = rng.integers(0, 256, (c, 9, 11), dtype=np.uint8)
        p = str(tmp_path / f"m{c}.binaryproto")
        write_mean(rng.random((c, 9, 11), dtype=np.float32) * 200, p)
        tf = DataTransformer(_tp(crop_size=5, mirror=True, mean_file=p, scale=0.25), "TRAIN")
        plans = [(m, h, w) for m in (False, True) for h in (0, 4) for w in (1, 6)]
        pieces = [tf.crop_mirror(x, pl) for pl in plans]
        with_cv = tf.finish_numpy(pieces, plans)
        monkeypatch.setattr(T, "_cv2", lambda: None)
        assert np.array_equal(tf.finish_numpy(pieces, plans), with_cv)
        monkeypatch.undo()


def test_transformer_errors():
    with pytest.raises(DataError, match="force_color and force_gray"):
        DataTransformer(_tp(force_color=True, force_gray=True))
    with pytest.raises(DataError, match="mean_file or mean_value"):
        DataTransformer(_tp(mean_file="x", mean_value=[1]))
    tf = DataTransformer(_tp(crop_size=8))
    with pytest.raises(DataError, match="smaller than crop_size 8"):
        tf.check_source_shape((3, 7, 9))


def test_random_draws_only_when_needed():
    assert not DataTransformer(_tp(crop_size=3), "TEST").random
    assert DataTransformer(_tp(crop_size=3), "TRAIN").random
    assert DataTransformer(_tp(mirror=True), "TEST").random


def test_raw_datum_wire_fast_path_matches_protobuf():
    from recaffe.netspec.data.datum import raw_datum_view
    arr = np.random.default_rng(3).integers(0, 256, (3, 5, 4), dtype=np.uint8)
    for label in (0, 9, -1, 2 ** 31 - 1, -2 ** 31):
        d = array_to_datum(arr, label)
        d.encoded = False                                       # explicit false, as Caffe writes it
        c, h, w, data, lab = raw_datum_view(d.SerializeToString())
        assert (c, h, w, lab) == (3, 5, 4, label) and bytes(data) == arr.tobytes()
    twice = array_to_datum(arr, 1).SerializeToString() + array_to_datum(arr[:1], 2).SerializeToString()
    c, h, w, data, lab = raw_datum_view(twice)                  # protobuf: the last occurrence wins
    p = parse_datum(twice)
    assert (c, h, w, bytes(data), lab) == (p.channels, p.height, p.width, p.data, p.label)
    # everything else goes back to protobuf: encoded, float_data, size mismatch, unknown field, garbage
    bad = array_to_datum(arr, 1)
    bad.channels = 2
    for value in (encoded_datum(b"\x89PNG....", 1).SerializeToString(),
                  array_to_datum(arr.astype(np.float32), 1).SerializeToString(),
                  bad.SerializeToString(), array_to_datum(arr, 1).SerializeToString() + b"\x40\x01",
                  array_to_datum(arr, 1).SerializeToString()[:-9], b"\xff\xff"):
        assert raw_datum_view(value) is None


def test_lmdb_zero_copy_views_equal_copies(tmp_path):
    from recaffe.netspec.data.lmdb_io import LMDBWriter
    from recaffe.netspec.data.sources import LMDBSource
    rng = np.random.default_rng(4)
    arrs = [rng.integers(0, 256, (3, 4, 5), dtype=np.uint8) for _ in range(3)]
    with LMDBWriter(str(tmp_path / "db")) as db:
        for i, a in enumerate(arrs):
            db.put("%08d" % i, array_to_datum(a, i).SerializeToString())
        db.put("%08d" % 3, array_to_datum(arrs[0].astype(np.float32) / 2, 3).SerializeToString())
    src = LMDBSource(str(tmp_path / "db"))
    with src.views([2, 0, 3]) as recs:
        got = [(a.copy(), lab) for a, lab in recs]
    for (a, lab), (b, lab2) in zip(got, src.load_many([2, 0, 3])):
        assert a.dtype == b.dtype and np.array_equal(a, b) and lab == lab2
