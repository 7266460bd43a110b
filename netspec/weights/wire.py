"""Just enough of the protobuf wire format to move .caffemodel blobs without decoding every float into a
Python object (protobuf's own parser would build a 60M-element repeated field for one fc layer).

Reading walks NetParameter -> layer (V2 ``layer`` = 100, V1 ``layers`` = 2, V0 ``layers.layer`` = 1)
-> name and blobs -> BlobProto fields (caffe.proto numbers: num/channels/height/width 1-4, data 5
packed float, shape 7, double_data 8); everything else is skipped. The packed ``data`` field becomes a
``np.frombuffer`` view of the file buffer.

Writing emits what Caffe's serializer emits for Net::ToProto (fields in field-number order): the net
name, then each layer as its LayerParameter fields below ``blobs`` (7), the blobs (``data`` then
``shape``), then the fields above 7.
Files are written through ``recaffe.protos.files.atomic_write``, the one atomic writer.
"""
import numpy as np

from recaffe.protos import caffe_pb2, forks
from recaffe.protos.blob import decode_varint, encode_varint


class WireError(ValueError):
    pass


def _varint(buf, pos, end):
    try:
        return decode_varint(buf, pos, end)
    except IndexError:
        raise WireError("truncated or overlong varint") from None


def _fields(buf, start, end):
    """Yield (field number, wire type, value) with value an int (varint), an offset (fixed 32/64) or a
    (start, end) range (length-delimited)."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = _varint(buf, pos, end)
            yield fn, wt, v
        elif wt == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise WireError(f"field {fn} runs past the end of its message")
            yield fn, wt, (pos, pos + n)
            pos += n
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise WireError(f"field {fn} runs past the end of its message")
            yield fn, wt, pos
            pos += size
        else:
            raise WireError(f"unsupported wire type {wt} (field {fn})")


def _signed32(v):
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


class Blob:
    """One BlobProto of a file: ``legacy`` (num, channels, height, width) or None, ``shape`` dims,
    ``count`` values, ``array()`` a float32 view/copy of them."""
    __slots__ = ("legacy", "shape", "count", "_parts", "_buf")

    def __init__(self, buf, start, end):
        self._buf = buf
        legacy = [None] * 4
        self.shape = []
        floats, doubles = [], []
        for fn, wt, v in _fields(buf, start, end):
            if 1 <= fn <= 4 and wt == 0:
                legacy[fn - 1] = _signed32(v)
            elif fn == 5:
                floats.append((wt, v))
            elif fn == 7 and wt == 2:
                for dfn, dwt, dv in _fields(buf, *v):
                    if dfn != 1:
                        continue
                    if dwt == 0:
                        self.shape.append(_signed32(dv))
                    elif dwt == 2:
                        p, e = dv
                        while p < e:
                            d, p = _varint(buf, p, e)
                            self.shape.append(_signed32(d))
            elif fn == 8:
                doubles.append((wt, v))
        self.legacy = None if all(x is None for x in legacy) else tuple(x or 0 for x in legacy)
        self._parts = ("<f8", doubles) if doubles else ("<f4", floats)
        dtype, parts = self._parts
        size = 8 if dtype == "<f8" else 4
        self.count = sum((v[1] - v[0]) // size if wt == 2 else 1 for wt, v in parts)

    def array(self):
        dtype, parts = self._parts
        chunks = []
        for wt, v in parts:
            if wt == 2:
                chunks.append(np.frombuffer(self._buf, dtype=dtype, count=(v[1] - v[0]) // np.dtype(dtype).itemsize,
                                            offset=v[0]))
            else:
                chunks.append(np.frombuffer(self._buf, dtype=dtype, count=1, offset=v))
        arr = chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.zeros(0, dtype)
        return arr.astype(np.float32, copy=False)


def _string(buf, rng):
    return bytes(buf[rng[0]:rng[1]]).decode("utf-8", errors="replace")


def _layer(buf, rng, name_field, blobs_field, v0_field=None):
    name, blobs = None, []
    for fn, wt, v in _fields(buf, *rng):
        if wt != 2:
            continue
        if fn == name_field:
            name = _string(buf, v)
        elif fn == blobs_field:
            blobs.append(Blob(buf, *v))
        elif v0_field is not None and fn == v0_field:
            v0_name, v0_blobs = _layer(buf, v, 1, 50)
            name = name if name is not None else v0_name
            blobs.extend(v0_blobs)
    return name or "", blobs


def read_caffemodel_layers(buf):
    """[(layer name, [Blob, ...])] in file order, for V2, V1 and V0 layer entries."""
    out = []
    for fn, wt, v in _fields(buf, 0, len(buf)):
        if fn == 100 and wt == 2:
            out.append(_layer(buf, v, 1, 7))
        elif fn == 2 and wt == 2:
            out.append(_layer(buf, v, 4, 6, v0_field=1))
    return out


# -- writing ---------------------------------------------------------------------------------------
def _key(fn, wt):
    return encode_varint(fn << 3 | wt)


def _split_layer(lp):
    """Serialized LayerParameter fields numbered below and above ``blobs`` (7), blobs left out; fork
    fields (unknown to BVLC's schema, protos/forks.py) go last under their fork numbers."""
    lo, hi = caffe_pb2.LayerParameter(), caffe_pb2.LayerParameter()
    lo.CopyFrom(lp)
    hi.CopyFrom(lp)
    for fd, _ in lp.ListFields():
        (hi if fd.number < 7 else lo).ClearField(fd.name)
    hi.ClearField("blobs")
    lo.DiscardUnknownFields()
    return lo.SerializeToString(deterministic=True), forks.to_fork_wire(hi.SerializeToString(deterministic=True))


def blob_parts(t, field=7):
    """A float32 BlobProto of tensor ``t`` as field ``field`` of its parent message, in Blob::ToProto's
    layout (packed data, then shape; no shape for a 0-axis blob): (prefix with key, length and the data
    field's header, the float array, the shape bytes, total size)."""
    arr = np.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4").reshape(-1)
    head = b""
    if arr.size:
        head = _key(5, 2) + encode_varint(arr.nbytes)
    shape = b""
    if t.dim():
        dims = b"".join(encode_varint(int(d)) for d in t.shape)
        body = _key(1, 2) + encode_varint(len(dims)) + dims
        shape = _key(7, 2) + encode_varint(len(body)) + body
    prefix = _key(field, 2) + encode_varint(len(head) + arr.nbytes + len(shape)) + head
    return prefix, arr, shape, len(prefix) + arr.nbytes + len(shape)


def write_caffemodel(f, name, layer_params, blob_lists):
    """Stream a binary NetParameter (Net::ToProto layout) to the binary file object ``f``."""
    if name:
        nb = name.encode("utf-8")
        f.write(_key(1, 2) + encode_varint(len(nb)) + nb)
    for lp, blobs in zip(layer_params, blob_lists):
        lo, hi = _split_layer(lp)
        parts = [blob_parts(t) for t in blobs]
        size = len(lo) + len(hi) + sum(p[3] for p in parts)
        f.write(_key(100, 2) + encode_varint(size))
        f.write(lo)
        for head, arr, shape, _ in parts:
            f.write(head)
            if arr.size:
                f.write(memoryview(arr).cast("B"))
            f.write(shape)
        f.write(hi)

