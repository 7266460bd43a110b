"""Caffe's Datum record (caffe.proto; src/caffe/util/io.cpp CVMatToDatum / DecodeDatum*).

A raw datum holds ``channels``, ``height``, ``width`` and ``data`` = C*H*W uint8 bytes in C x H x W
order (BGR for colour images), or ``float_data`` when ``data`` is empty. An encoded datum
(``encoded: true``) holds a whole image file in ``data``. ``label`` is an int32.
"""
import numpy as np
from google.protobuf.message import DecodeError

from recaffe.protos import caffe_pb2
from recaffe.protos.blob import decode_varint, encode_varint as varint
from recaffe.protos.errors import DataError
from .image import AS_STORED, COLOR, GRAY, decode_image


def array_to_datum(arr, label=0):
    """uint8 (or float) C x H x W array -> raw Datum (uint8 -> ``data``, float -> ``float_data``)."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise DataError(f"a Datum holds a C x H x W array, got shape {arr.shape}")
    d = caffe_pb2.Datum()
    d.channels, d.height, d.width = (int(x) for x in arr.shape)
    if arr.dtype == np.uint8:
        d.data = np.ascontiguousarray(arr).tobytes()
    else:
        d.float_data.extend(np.asarray(arr, np.float32).ravel().tolist())
    d.label = int(label)
    return d


def raw_datum_parts(chw, label=0):
    """A raw uint8 Datum of a C x H x W array as (head, pixels, tail): concatenated (``put_parts``),
    byte-identical to protobuf's serialization of Caffe's CVMatToDatum result (fields in number
    order: channels 1, height 2, width 3, data 4, label 5, encoded 7 = false, all explicitly set).
    The pixels stay an array (any strides) until they are copied once, into their destination."""
    c, h, w = chw.shape
    head = b"\x08" + varint(c) + b"\x10" + varint(h) + b"\x18" + varint(w) + b"\x22" + varint(c * h * w)
    return head, chw, b"\x28" + varint(int(label)) + b"\x38\x00"


def encoded_datum_parts(data, label=0):
    """An encoded Datum (data 4, label 5, encoded 7 = true) as (head, file bytes, tail)."""
    return b"\x22" + varint(len(data)), data, b"\x28" + varint(int(label)) + b"\x38\x01"


def parts_size(parts):
    head, body, tail = parts
    return len(head) + (body.size if isinstance(body, np.ndarray) else len(body)) + len(tail)


def put_parts(parts, buf):
    """Write ``parts`` into the writable buffer ``buf`` (exactly ``parts_size(parts)`` bytes)."""
    head, body, tail = parts
    out = np.frombuffer(buf, np.uint8)
    n, m = len(head), len(out) - len(tail)
    out[:n] = np.frombuffer(head, np.uint8)
    if isinstance(body, np.ndarray):
        np.copyto(out[n:m].reshape(body.shape), body, casting="no")
    else:
        out[n:m] = np.frombuffer(body, np.uint8)
    out[m:] = np.frombuffer(tail, np.uint8)


def join_parts(parts):
    buf = bytearray(parts_size(parts))
    put_parts(parts, buf)
    return buf


def raw_datum_bytes(chw, label=0):
    """The serialized raw Datum of a uint8 C x H x W array (see raw_datum_parts)."""
    return bytes(join_parts(raw_datum_parts(np.asarray(chw, np.uint8), label)))


def encoded_datum_bytes(data, label=0):
    """The serialized encoded Datum (see encoded_datum_parts), as ``encoded_datum(..)``'s."""
    return bytes(join_parts(encoded_datum_parts(data, label)))


def encoded_datum(data, label=0):
    d = caffe_pb2.Datum()
    d.data = bytes(data)
    d.label = int(label)
    d.encoded = True
    return d


def parse_datum(value, where="<datum>"):
    d = caffe_pb2.Datum()
    try:
        d.ParseFromString(bytes(value))
    except DecodeError as e:
        raise DataError(f"{where}: not a serialized caffe Datum ({e})") from None
    return d


def raw_datum_view(value):
    """Fast path for a serialized *raw* uint8 Datum: ``(channels, height, width, data, label)`` with
    ``data`` a zero-copy slice of ``value`` (bytes or an LMDB buffer), read straight from the wire
    format (caffe.proto field numbers: 1 channels, 2 height, 3 width, 4 data, 5 label, 7 encoded;
    the last occurrence of a field wins, as in protobuf). None for anything else (encoded, float_data,
    unknown fields, malformed, size mismatch): callers then take the protobuf path, which gives the
    same values or the proper error."""
    buf = memoryview(value)
    n, pos = len(buf), 0
    ints = [0, 0, 0, 0, 0, 0, 0, 0]
    data = None
    try:
        while pos < n:
            tag = buf[pos]                      # one-byte tags and values in line (the usual case)
            if tag >= 0x80:
                return None                     # no caffe.proto Datum field needs a two-byte tag
            pos += 1
            field, wire = tag >> 3, tag & 7
            if wire == 0 and field in (1, 2, 3, 5, 7):
                v = buf[pos]
                if v < 0x80:
                    pos += 1
                else:
                    v, pos = decode_varint(buf, pos)
                ints[field] = v
            elif wire == 2 and field == 4:
                size, pos = decode_varint(buf, pos)
                if pos + size > n:
                    return None
                data, pos = buf[pos:pos + size], pos + size
            else:
                return None
    except IndexError:
        return None
    c, h, w, label, encoded = ints[1], ints[2], ints[3], ints[5], ints[7]
    if encoded or data is None or c >= 1 << 31 or h >= 1 << 31 or w >= 1 << 31 or len(data) != c * h * w \
            or len(data) == 0:
        return None
    label &= 0xFFFFFFFF                         # int32 varints are sign-extended to 64 bits
    return c, h, w, data, label - (1 << 32) if label >= 1 << 31 else label


def decode_value(value, color_mode=None, where=None):
    """(C x H x W array, label) of a serialized Datum (bytes or an LMDB buffer): a raw uint8 datum as
    a zero-copy view of ``value`` (``raw_datum_view``), anything else through protobuf and
    ``datum_to_array``. ``where``: a function naming the record for error messages, called only on
    the protobuf path."""
    r = raw_datum_view(value)
    if r is not None:
        return np.frombuffer(r[3], np.uint8).reshape(r[:3]), r[4]
    name = where() if where is not None else "<datum>"
    d = parse_datum(value, name)
    return datum_to_array(d, color_mode, name), d.label


def datum_to_array(d, color_mode=None, where="<datum>"):
    """The datum's pixels as a C x H x W array: uint8 for ``data`` / encoded, float32 for float_data.

    color_mode applies to encoded datums: "color" (force_color), "gray" (force_gray) or None (as
    stored). On raw datums Caffe ignores it (it only logs), and so do we.
    """
    if d.encoded:
        mode = {None: AS_STORED, COLOR: COLOR, GRAY: GRAY}[color_mode]
        return decode_image(d.data, mode, where=where)
    shape = (d.channels, d.height, d.width)
    n = shape[0] * shape[1] * shape[2]
    if min(shape) <= 0:     # Caffe's DataTransformer: CHECK_GT(datum_channels, 0), CHECK_GE(height, crop)...
        raise DataError(f"{where}: datum of channels x height x width = {' x '.join(map(str, shape))}; a datum "
                        f"needs at least one pixel (an empty record: rebuild the database)")
    if d.data:
        if len(d.data) != n:
            raise DataError(f"{where}: datum data has {len(d.data)} bytes, channels*height*width = {n}")
        return np.frombuffer(d.data, np.uint8).reshape(shape)
    if len(d.float_data) != n:
        raise DataError(f"{where}: datum float_data has {len(d.float_data)} values, "
                        f"channels*height*width = {n}")
    return np.asarray(d.float_data, np.float32).reshape(shape)


def datum_shape(d, color_mode=None, where="<datum>"):
    """(C, H, W) of a datum; encoded datums are decoded to find out (as Caffe's DecodeDatumToCVMat)."""
    if d.encoded:
        return datum_to_array(d, color_mode, where).shape
    return (d.channels, d.height, d.width)
