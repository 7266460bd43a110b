"""The fork schemas at work: which fork field is which, how fork fields sit in BVLC messages, and their
decoding, for protos/forks.py (text) and the layers (``layer_param``).

A fork field lives in a BVLC message as an unknown field under the fork's own number, or, where BVLC
uses that number in the same message (SegNet's upsample_param is 137, BVLC's embed_param), under
``SHADOW`` + number so that BVLC's parser never reads it as the BVLC field: ``adopt`` moves such
fields there after a binary read, ``to_fork_wire`` writes them back under the fork's number.
Decoding goes by the family of the layer's type (forks reuse numbers).
"""
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.unknown_fields import UnknownFieldSet

from recaffe.protos import caffe_pb2
from . import FAMILIES

#: in-memory offset of fork fields whose number the BVLC message already uses
SHADOW = 1 << 28


class ForkField:
    """One field a fork adds to a BVLC message: its family, the family's message for that BVLC
    message (``container``), the fork's descriptor and the number it has in memory."""

    def __init__(self, family, container, fd, memory_number):
        self.family, self.container, self.fd, self.memory_number = family, container, fd, memory_number


_BY_NAME = {}        # (BVLC message full name, field name) -> ForkField
_CONTAINERS = {}     # (family, BVLC message full name) -> the family's message class
_TYPE_FAMILY = {}    # layer type -> family
_SHADOWED = {}       # family -> {own number: memory number} of shadowed LayerParameter fields


def _load_schemas():
    bvlc = caffe_pb2.DESCRIPTOR.message_types_by_name
    for family, (module, types) in FAMILIES.items():
        for t in types:
            _TYPE_FAMILY[t] = family
        for name, desc in module.DESCRIPTOR.message_types_by_name.items():
            if name not in bvlc:
                continue
            target = bvlc[name]
            cls = getattr(module, name)
            _CONTAINERS[(family, target.full_name)] = cls
            for fd in desc.fields:
                if fd.message_type is None or fd.is_repeated:
                    raise AssertionError(f"{family}.{name}.{fd.name}: fork fields of BVLC messages must be "
                                         "singular messages")
                number = fd.number
                if target.fields_by_number.get(number) is not None:
                    if name != "LayerParameter":   # adopt/to_fork_wire handle LayerParameter only
                        raise AssertionError(f"{family}.{name}.{fd.name}: shadowed fields must be in LayerParameter")
                    _SHADOWED.setdefault(family, {})[number] = SHADOW + number
                    number += SHADOW
                key = (target.full_name, fd.name)
                if key in _BY_NAME or fd.name in target.fields_by_name:
                    raise AssertionError(f"fork field {key} declared twice")
                _BY_NAME[key] = ForkField(family, cls, fd, number)


_load_schemas()


def family_of(layer_type):
    """The fork family whose schema describes layers of ``layer_type`` (None for BVLC types)."""
    return _TYPE_FAMILY.get(layer_type)


def fork_field(message_name, field_name):
    """The ForkField a fork adds to BVLC message ``message_name`` as ``field_name``, or None."""
    return _BY_NAME.get((message_name, field_name))


# -- wire helpers ------------------------------------------------------------------------------------
def _varint(data, pos):
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _top_fields(data):
    """(number, wire type, start, value start, end) of each top-level field of serialized ``data``."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wt = key >> 3, key & 7
        vstart = pos
        if wt == 0:
            _, pos = _varint(data, pos)
        elif wt == 1:
            pos += 8
        elif wt == 5:
            pos += 4
        elif wt == 2:
            n, pos = _varint(data, pos)
            pos += n
        elif wt == 3:       # group: skip to the matching end-group key
            depth = 1
            while depth:
                k, pos = _varint(data, pos)
                if k & 7 == 3:
                    depth += 1
                elif k & 7 == 4:
                    depth -= 1
                elif k & 7 == 0:
                    _, pos = _varint(data, pos)
                elif k & 7 == 1:
                    pos += 8
                elif k & 7 == 5:
                    pos += 4
                elif k & 7 == 2:
                    n, pos = _varint(data, pos)
                    pos += n
        else:
            raise ValueError(f"bad wire type {wt}")
        yield number, wt, start, vstart, pos


def _key(number, wt):
    return _VarintBytes(number << 3 | wt)


def _encode_unknown(field, number):
    wt, data = field.wire_type, field.data
    if wt == 0:
        return _key(number, 0) + _VarintBytes(data & ((1 << 64) - 1))
    if wt == 1:
        return _key(number, 1) + int(data).to_bytes(8, "little")
    if wt == 5:
        return _key(number, 5) + int(data).to_bytes(4, "little")
    if wt == 2:
        return _key(number, 2) + _VarintBytes(len(data)) + bytes(data)
    return b""      # groups: no fork uses them


def fork_fields(msg, family):
    """The fork fields ``msg`` (a BVLC message) holds, as ``family``'s message for its type (decoded
    from msg's unknown fields under the fork's numbers); None when the family adds nothing to it."""
    cls = _CONTAINERS.get((family, msg.DESCRIPTOR.full_name))
    if cls is None:
        return None
    unknown = UnknownFieldSet(msg)
    if not len(unknown):
        return cls()
    data = b"".join(_encode_unknown(f, f.field_number - SHADOW if f.field_number >= SHADOW else f.field_number)
                    for f in unknown)
    return cls.FromString(data)


def layer_param(lp, name):
    """The fork parameter ``name`` (e.g. "norm_param") of layer ``lp``, decoded with the schema of
    the family of lp.type (an empty message, i.e. the fork's defaults, when the layer has none)."""
    family = family_of(lp.type)
    fields = fork_fields(lp, family) if family else None
    if fields is None or name not in fields.DESCRIPTOR.fields_by_name:
        raise KeyError(f"layer type {lp.type!r} has no fork parameter {name!r}")
    return getattr(fields, name)


def has_layer_param(lp, name):
    family = family_of(lp.type)
    fields = fork_fields(lp, family) if family else None
    return fields is not None and name in fields.DESCRIPTOR.fields_by_name and fields.HasField(name)


def set_layer_param(lp, name, value):
    """Set fork field ``name`` of BVLC LayerParameter ``lp`` to message ``value`` (replacing it)."""
    f = fork_field(lp.DESCRIPTOR.full_name, name)
    if f is None:
        raise KeyError(f"no fork declares a LayerParameter field {name!r}")
    data = lp.SerializeToString()
    kept = b"".join(data[s:e] for n, _, s, _, e in _top_fields(data) if n != f.memory_number)
    lp.Clear()
    lp.MergeFromString(kept)
    _attach_value(lp, f, value)


def _attach_value(msg, f, value):
    payload = value.SerializeToString()
    msg.MergeFromString(_key(f.memory_number, 2) + _VarintBytes(len(payload)) + payload)


def adopt(net):
    """After a binary read: move fork fields that BVLC's parser took for a BVLC field of the same number
    (SegNet's upsample_param read as embed_param) to their in-memory number, for the layers whose type
    belongs to such a fork. In place; returns ``net``."""
    for lp in net.layer:
        shadowed = _SHADOWED.get(family_of(lp.type))
        if not shadowed:
            continue
        for own in shadowed:
            fd = lp.DESCRIPTOR.fields_by_number[own]
            if lp.HasField(fd.name):
                payload = getattr(lp, fd.name).SerializeToString()
                lp.ClearField(fd.name)
                lp.MergeFromString(_key(SHADOW + own, 2) + _VarintBytes(len(payload)) + payload)
    return net


def to_fork_wire(data):
    """Serialized LayerParameter ``data`` with shadowed fork fields back under the fork's number."""
    if not _SHADOWED:
        return data
    out, last, changed = [], 0, False
    for number, wt, start, vstart, end in _top_fields(data):
        if number >= SHADOW:
            out.append(data[last:start])
            out.append(_key(number - SHADOW, wt))
            last, changed = vstart, True
    if not changed:
        return data
    out.append(data[last:])
    return b"".join(out)


def printable_fork_fields(msg, layer_type=None):
    """For the prototxt printer: the fork message holding ``msg``'s fork fields (the family of
    ``layer_type``, else the one family whose fields cover all of msg's unknown fields), or None."""
    unknown = UnknownFieldSet(msg)
    if not len(unknown):
        return None
    family = family_of(layer_type) if layer_type else None
    candidates = [family] if family else sorted({f for (f, m) in _CONTAINERS if m == msg.DESCRIPTOR.full_name})
    numbers = {u.field_number - SHADOW if u.field_number >= SHADOW else u.field_number for u in unknown}
    for fam in candidates:
        cls = _CONTAINERS.get((fam, msg.DESCRIPTOR.full_name))
        if cls is not None and numbers <= set(cls.DESCRIPTOR.fields_by_number):
            return fork_fields(msg, fam)
    return None


