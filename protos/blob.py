"""BlobProto <-> numpy and Datum <-> numpy, without routing the floats through Python objects.

Shape rule (src/caffe/blob.cpp, Blob::FromProto; python/caffe/io.py, blobproto_to_array): if any of the
legacy ``num/channels/height/width`` fields is present the blob is 4-D (num, channels, height, width),
otherwise its shape is ``shape.dim``. Values come from ``double_data`` when non-empty, else ``data``
(likewise ``double_diff`` / ``diff``); the count must equal the shape's product.

Speed: iterating a repeated float field of protobuf's Python API makes one Python float per element
(seconds for a 100M-value fc layer). protobuf's upb backend exposes repeated scalars to numpy through
``__array__`` (a C copy), which is used when present; otherwise, and when the caller has the raw bytes
(a .binaryproto file), the packed ``data`` bytes (caffe.proto: field 5, packed float) are viewed with
``np.frombuffer``. Writing builds the same bytes from ``ndarray.tobytes()`` and lets protobuf parse them
(``extend`` from an array goes element by element). Unpacked encodings (which parsers must accept)
fall back to the slow path.
"""
import numpy as np

from . import caffe_pb2
from .errors import ProtoError

# BlobProto field numbers (caffe.proto)
_NUM, _CHANNELS, _HEIGHT, _WIDTH, _DATA, _DIFF, _SHAPE, _DDATA, _DDIFF = range(1, 10)


def decode_varint(buf, pos, end=None):
    """(value, next position) of the protobuf base-128 varint at ``buf[pos]``; IndexError when it runs
    past ``end`` (default: the buffer's end) or over 10 bytes. The one varint reader of the project
    (BlobProto, .caffemodel and Datum wire readers)."""
    end = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise IndexError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _packed_fields(raw):
    """{field number: bytes} of the length-delimited top-level fields of a serialized BlobProto; None
    when a value field uses the unpacked encoding (caller takes the slow path)."""
    out, pos, end = {}, 0, len(raw)
    while pos < end:
        key, pos = decode_varint(raw, pos)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            _, pos = decode_varint(raw, pos)
        elif wt == 1:
            if fn in (_DDATA, _DDIFF):
                return None
            pos += 8
        elif wt == 5:
            if fn in (_DATA, _DIFF):
                return None
            pos += 4
        elif wt == 2:
            n, pos = decode_varint(raw, pos)
            if fn in out:  # a packed field split in several chunks: concatenate
                out[fn] = out[fn] + raw[pos:pos + n]
            else:
                out[fn] = raw[pos:pos + n]
            pos += n
        else:
            return None
    return out


def blob_shape(blob):
    """The shape a Caffe Blob takes from this BlobProto (legacy 4-D dims win when any is present)."""
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


def blobproto_to_array(blob, return_diff=False, raw=None):
    """The blob's values (float32, or float64 from double_data) as an array of its shape.
    ``raw``: the blob's serialized bytes when the caller already has them (e.g. a file's content)."""
    shape = blob_shape(blob)
    count = int(np.prod(shape, dtype=np.int64))
    dfield, sfield = (_DDIFF, _DIFF) if return_diff else (_DDATA, _DATA)
    dvals, svals = (blob.double_diff, blob.diff) if return_diff else (blob.double_data, blob.data)
    fields = None
    if raw is not None or not hasattr(svals, "__array__"):
        fields = _packed_fields(raw if raw is not None else blob.SerializeToString())
    if fields is None:  # upb's C copy through __array__, or an unpacked encoding
        arr = np.array(dvals, np.float64) if len(dvals) else np.array(svals, np.float32)
    elif dfield in fields:
        arr = np.frombuffer(fields[dfield], "<f8").astype(np.float64)
    else:
        arr = np.frombuffer(fields.get(sfield, b""), "<f4").astype(np.float32)
    if arr.size != count:
        what = "diff" if return_diff else "data"
        raise ProtoError(f"BlobProto has {arr.size} {what} values for shape {shape}; expected {count}")
    return arr.reshape(shape)


def encode_varint(n):
    """Protobuf base-128 varint of ``n``; negative values as their 64-bit two's complement (10 bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(fn, payload):
    return encode_varint(fn << 3 | 2) + encode_varint(len(payload)) + payload


def array_to_blobproto(arr, diff=None, legacy=False):
    """A BlobProto holding ``arr`` (as float32 ``data``) and optionally ``diff``.

    Default layout is pycaffe's array_to_blobproto (``shape`` + ``data``); ``legacy=True`` writes
    num/channels/height/width instead, as tools/compute_image_mean.cpp does (at most 4 axes, missing
    leading axes are 1)."""
    arr = np.asarray(arr)
    parts = []
    if legacy:
        if arr.ndim > 4:
            raise ProtoError(f"a legacy (num, channels, height, width) BlobProto holds at most 4 axes; "
                             f"got shape {arr.shape}")
        dims = (1,) * (4 - arr.ndim) + tuple(arr.shape)
        for fn, d in zip((_NUM, _CHANNELS, _HEIGHT, _WIDTH), dims):
            parts.append(encode_varint(fn << 3) + encode_varint(int(d)))
    parts.append(_ld(_DATA, np.ascontiguousarray(arr, "<f4").tobytes()) if arr.size else b"")
    if diff is not None:
        d = np.asarray(diff)
        if d.shape != arr.shape:
            raise ProtoError(f"diff shape {d.shape} differs from data shape {arr.shape}")
        parts.append(_ld(_DIFF, np.ascontiguousarray(d, "<f4").tobytes()) if d.size else b"")
    if not legacy:
        shape = b"".join(encode_varint(int(d) & 0xFFFFFFFFFFFFFFFF) for d in arr.shape)
        parts.append(_ld(_SHAPE, _ld(1, shape) if shape else b""))  # present even for 0 axes, as pycaffe
    return caffe_pb2.BlobProto.FromString(b"".join(parts))


def datum_to_array(datum):
    """(channels, height, width) array of a non-encoded Datum: uint8 from ``data``, else float32 from
    ``float_data`` (src/caffe/data_transformer.cpp reads them in this order)."""
    shape = (datum.channels, datum.height, datum.width)
    if datum.encoded:
        raise ProtoError("Datum holds an encoded image; decode it first (netspec.data)")
    if len(datum.data):
        arr = np.frombuffer(datum.data, np.uint8)
    else:
        arr = np.array(datum.float_data, np.float32)
    if arr.size != int(np.prod(shape)):
        raise ProtoError(f"Datum has {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def array_to_datum(arr, label=None):
    """Datum of a 3-D (C, H, W) array: uint8 arrays go to ``data`` bytes, others to ``float_data``
    (python/caffe/io.py, array_to_datum)."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ProtoError(f"a Datum holds a 3-D (channels, height, width) array; got shape {arr.shape}")
    datum = caffe_pb2.Datum(channels=arr.shape[0], height=arr.shape[1], width=arr.shape[2])
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float32).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum
