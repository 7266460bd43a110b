"""caffe.io's proto <-> array helpers on the inputs pycaffe's own tests and old files give them (shared by
real pycaffe and recaffe). cases(caffe, caffe_pb2) -> {name: callable returning an array or raising}."""
import numpy as np


def _blob(caffe_pb2, values, **dims):
    blob = caffe_pb2.BlobProto()
    blob.data.extend(list(np.asarray(values, dtype=np.float64).flatten()))
    for k, v in dims.items():
        if k == "shape":
            blob.shape.dim.extend(list(v))
        else:
            setattr(blob, k, v)
    return blob


def cases(caffe, caffe_pb2):
    io = caffe.io
    vals = np.arange(24, dtype=np.float64) / 7.0 - 1.5
    legacy = _blob(caffe_pb2, vals, num=2, channels=3, height=2, width=2)
    legacy_bytes = legacy.SerializeToString()

    def parsed():
        b = caffe_pb2.BlobProto()
        b.ParseFromString(legacy_bytes)
        return io.blobproto_to_array(b)

    def with_diff():
        b = _blob(caffe_pb2, vals[:6], num=1, channels=1, height=2, width=3)
        b.diff.extend(list(vals[6:12]))
        return io.blobproto_to_array(b, return_diff=True)

    datum_f = caffe_pb2.Datum(channels=2, height=1, width=3, float_data=list(vals[:6]))
    datum_u8 = io.array_to_datum(np.arange(12, dtype=np.uint8).reshape(3, 2, 2), label=7)
    return {
        "legacy_4d": lambda: io.blobproto_to_array(legacy),
        "legacy_parsed": parsed,
        "legacy_partial_dims": lambda: io.blobproto_to_array(_blob(caffe_pb2, vals[:6], num=1, channels=6,
                                                                    height=1, width=1)),
        "legacy_return_diff": with_diff,
        "shape_nd": lambda: io.blobproto_to_array(_blob(caffe_pb2, vals, shape=(2, 3, 4))),
        "shape_1d": lambda: io.blobproto_to_array(_blob(caffe_pb2, vals[:5], shape=(5,))),
        "zeros_old_format": lambda: io.blobproto_to_array(_blob(caffe_pb2, np.zeros(100), num=1, channels=1,
                                                                height=10, width=10)),
        "scalar_no_shape": lambda: io.blobproto_to_array(_blob(caffe_pb2, [123.0])),
        "no_shape": lambda: io.blobproto_to_array(_blob(caffe_pb2, np.zeros(100))),
        "round_trip": lambda: io.blobproto_to_array(io.array_to_blobproto(vals.reshape(4, 6).astype(np.float32))),
        "vector_str": lambda: np.stack(io.blobprotovector_str_to_arraylist(io.arraylist_to_blobprotovector_str(
            [vals[:12].reshape(3, 4), vals[12:].reshape(3, 4)]))),
        "datum_float": lambda: io.datum_to_array(datum_f),
        "datum_uint8": lambda: io.datum_to_array(datum_u8),
        "datum_label": lambda: np.array(datum_u8.label),
        "datum_bad_ndim": lambda: io.array_to_datum(np.zeros((2, 2))),
    }
