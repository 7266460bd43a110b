"""Seeded mutators for the bad-input suite.

Structure-aware (protobuf messages, caffe.proto's descriptors): field deletion, number extremes
(per field type: 0, -1, INT_MAX, UINT32_MAX, 1e38, inf, NaN...), type swaps (a layer's type, a
``*_param`` grafted onto another layer), duplication (layers, repeated entries), dangling or
cyclic blob references, layer moves and junk strings. Text-level (the printed prototxt): truncation,
line deletion/duplication/swap, extreme number literals, byte flips and junk insertion. Bytes
(weights, states, databases, images): truncation, bit flips, zeroed or 0xFF chunks, duplicated
chunks, and a PNG/JPEG header's size set to extreme values.

Every mutator takes a ``random.Random`` and returns a description of what it did, so a case can be
reproduced from its seed.
"""
import random
import re

from google.protobuf import descriptor, text_format

FD = descriptor.FieldDescriptor
INT32 = [0, 1, -1, 2, 3, 7, 2 ** 31 - 1, -2 ** 31, 2 ** 15, 65535, 1000000, -1000000]
UINT32 = [0, 1, 2, 3, 7, 2 ** 32 - 1, 2 ** 31, 2 ** 31 - 1, 65536, 1000000, 2 ** 30]
INT64 = INT32 + [2 ** 63 - 1, -2 ** 63, 2 ** 40]
UINT64 = UINT32 + [2 ** 64 - 1, 2 ** 63, 2 ** 40]
FLOATS = [0.0, -0.0, -1.0, 1e-45, 1e-30, 1e30, 3.4e38, -3.4e38, float("inf"), float("-inf"), float("nan"),
          0.5, 2.0, 1e6, -1e6]
STRINGS = ["", "x" * 10000, "../../etc/passwd", "\x00", "Ω≈ç√", "/dev/zero", "data", "label", " ", "%s%n"]
NUMBER_LITERALS = ["-1", "0", "1e400", "-1e400", "99999999999999999999", "nan", "-nan", "inf", "0x7fffffff",
                   "4294967296", "-2147483649", "1.5", "1e-400", "00", "+1", "2147483648", "18446744073709551616"]
_INT_TYPES = {FD.TYPE_INT32: INT32, FD.TYPE_SINT32: INT32, FD.TYPE_SFIXED32: INT32, FD.TYPE_UINT32: UINT32,
              FD.TYPE_FIXED32: UINT32, FD.TYPE_INT64: INT64, FD.TYPE_SINT64: INT64, FD.TYPE_SFIXED64: INT64,
              FD.TYPE_UINT64: UINT64, FD.TYPE_FIXED64: UINT64}


def _messages(msg, depth=0):
    """Every (sub)message of ``msg`` that is set, itself included."""
    yield msg
    if depth > 8:
        return
    for field, value in msg.ListFields():
        if field.type == FD.TYPE_MESSAGE:
            for sub in (value if _repeated(field) else [value]):
                yield from _messages(sub, depth + 1)


def _repeated(field):
    return field.is_repeated


def _random_value(rng, field):
    if field.type in _INT_TYPES:
        return rng.choice(_INT_TYPES[field.type])
    if field.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return rng.choice(FLOATS)
    if field.type == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == FD.TYPE_ENUM:
        return rng.choice(field.enum_type.values).number
    if field.type == FD.TYPE_STRING:
        return rng.choice(STRINGS)
    if field.type == FD.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 7, 100])))
    return None


def _scalar_sites(msg, set_only):
    out = []
    for sub in _messages(msg):
        fields = [f for f, _ in sub.ListFields()] if set_only else list(sub.DESCRIPTOR.fields)
        out += [(sub, f) for f in fields if f.type != FD.TYPE_MESSAGE]
    return out


def op_delete(rng, msg):
    sites = [(sub, f) for sub in _messages(msg) for f, _ in sub.ListFields()]
    if not sites:
        return "delete: nothing set"
    sub, f = rng.choice(sites)
    if _repeated(f) and len(getattr(sub, f.name)) > 1 and rng.random() < 0.7:
        i = rng.randrange(len(getattr(sub, f.name)))
        del getattr(sub, f.name)[i]
        return f"delete {f.name}[{i}]"
    sub.ClearField(f.name)
    return f"clear {f.name}"


def op_extreme(rng, msg):
    sites = _scalar_sites(msg, set_only=rng.random() < 0.6) or _scalar_sites(msg, False)
    sub, f = rng.choice(sites)
    value = _random_value(rng, f)
    try:
        if _repeated(f):
            seq = getattr(sub, f.name)
            if len(seq) and rng.random() < 0.7:
                i = rng.randrange(len(seq))
                seq[i] = value
            else:
                seq.append(value)
        else:
            setattr(sub, f.name, value)
    except (ValueError, TypeError) as e:   # e.g. a closed enum refusing a value
        return f"extreme {f.name}: refused by protobuf ({type(e).__name__})"
    return f"extreme {f.name}={value!r:.40}"


def op_swap_type(rng, msg, types=()):
    layers = list(getattr(msg, "layer", []))
    if not layers:
        return op_extreme(rng, msg)
    lp = rng.choice(layers)
    if rng.random() < 0.5 or not types:
        donor = rng.choice(layers)
        params = [f for f, _ in donor.ListFields() if f.name.endswith("_param")]
        if params:
            f = rng.choice(params)
            getattr(lp, f.name).CopyFrom(getattr(donor, f.name))
            return f"graft {f.name} from '{donor.name}' onto '{lp.name}'"
    old = lp.type
    lp.type = rng.choice(list(types) + ["", "convolution", "Convolution ", "NoSuchLayer"])
    return f"type of '{lp.name}': {old} -> {lp.type}"


def op_duplicate(rng, msg):
    sites = [(sub, f) for sub in _messages(msg) for f, _ in sub.ListFields() if _repeated(f)]
    if not sites:
        return op_extreme(rng, msg)
    sub, f = rng.choice(sites)
    seq = getattr(sub, f.name)
    i = rng.randrange(len(seq))
    times = rng.choice([1, 1, 1, 2, 50])
    for _ in range(times):
        if f.type == FD.TYPE_MESSAGE:
            seq.add().CopyFrom(seq[i])
        else:
            seq.append(seq[i])
    return f"duplicate {f.name}[{i}] x{times}"


def op_reference(rng, msg):
    layers = list(getattr(msg, "layer", []))
    if not layers:
        return op_extreme(rng, msg)
    lp = rng.choice(layers)
    names = [n for l in layers for n in list(l.top) + list(l.bottom)] + ["nope", "", lp.name]
    if lp.bottom and rng.random() < 0.5:
        i = rng.randrange(len(lp.bottom))
        lp.bottom[i] = rng.choice(names)
        return f"bottom {i} of '{lp.name}' -> '{lp.bottom[i]}'"
    if lp.top:
        i = rng.randrange(len(lp.top))
        lp.top[i] = rng.choice(names)
        return f"top {i} of '{lp.name}' -> '{lp.top[i]}'"
    lp.bottom.append(rng.choice(names))
    return f"bottom added to '{lp.name}'"


def op_move(rng, msg):
    layers = getattr(msg, "layer", None)
    if layers is None or len(layers) < 2:
        return op_delete(rng, msg)
    items = [type(layers[0])() for _ in layers]
    for a, b in zip(items, layers):
        a.CopyFrom(b)
    i, j = rng.randrange(len(items)), rng.randrange(len(items))
    items.insert(j, items.pop(i))
    del layers[:]
    for it in items:
        layers.add().CopyFrom(it)
    return f"move layer {i} -> {j}"


def op_string(rng, msg):
    sites = [(sub, f) for sub, f in _scalar_sites(msg, True) if f.type == FD.TYPE_STRING]
    if not sites:
        return op_extreme(rng, msg)
    sub, f = rng.choice(sites)
    value = rng.choice(STRINGS)
    if _repeated(f):
        seq = getattr(sub, f.name)
        seq[rng.randrange(len(seq))] = value
    else:
        setattr(sub, f.name, value)
    return f"string {f.name}={value[:20]!r}"


STRUCT_OPS = [(op_delete, 3), (op_extreme, 6), (op_swap_type, 2), (op_duplicate, 2), (op_reference, 2),
              (op_move, 1), (op_string, 1)]


def mutate_message(rng, msg, n=None, types=()):
    """Apply 1-4 structure-aware mutations to ``msg`` in place; returns their descriptions."""
    done = []
    for _ in range(n if n is not None else rng.choice([1, 1, 1, 2, 2, 3])):
        op = rng.choices([o for o, _ in STRUCT_OPS], [w for _, w in STRUCT_OPS])[0]
        done.append(op(rng, msg, types) if op is op_swap_type else op(rng, msg))
    return done


# -- text ------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"(?<=: )-?[0-9][0-9.e+-]*")


def mutate_text(rng, text):
    """One text-level mutation of a prototxt; returns (text, description)."""
    lines = text.split("\n")
    k = rng.randrange(7)
    if k == 0 and text:
        i = rng.randrange(len(text))
        return text[:i], f"truncate at {i}"
    if k == 1 and len(lines) > 1:
        i = rng.randrange(len(lines))
        return "\n".join(lines[:i] + lines[i + 1:]), f"delete line {i}"
    if k == 2:
        i = rng.randrange(len(lines))
        return "\n".join(lines[:i + 1] + lines[i:]), f"duplicate line {i}"
    if k == 3 and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines), f"swap lines {i} {j}"
    if k == 4:
        spots = list(_NUMBER.finditer(text))
        if spots:
            m = rng.choice(spots)
            lit = rng.choice(NUMBER_LITERALS)
            return text[:m.start()] + lit + text[m.end():], f"number {m.group()} -> {lit}"
    if k == 5 and text:
        b = bytearray(text.encode("utf-8"))
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        return b.decode("utf-8", "replace"), f"flip a bit of byte {i}"
    junk = rng.choice(["{", "}", '"', "layer {", "\x00", "#", ":", "\ufeff", "name: ", "dim: -5", "\\"])
    i = rng.randrange(len(text) + 1)
    return text[:i] + junk + text[i:], f"insert {junk!r} at {i}"


def print_message(msg):
    return text_format.MessageToString(msg)


# -- bytes -----------------------------------------------------------------------------------------
def mutate_bytes(rng, data, protect=0):
    """One or more byte-level mutations of ``data`` (bytes); returns (bytes, description). ``protect``:
    leave the first bytes alone (e.g. to get past a signature) in half of the cases."""
    b = bytearray(data)
    if not b:
        return bytes(b), "empty"
    start = protect if protect < len(b) and rng.random() < 0.5 else 0
    k = rng.randrange(6)
    if k == 0:
        n = rng.randrange(len(b))
        return bytes(b[:n]), f"truncate to {n} of {len(b)}"
    if k == 1:
        flips = rng.choice([1, 1, 2, 4, 16, 64])
        for _ in range(flips):
            i = rng.randrange(start, len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), f"{flips} bit flip(s)"
    if k == 2:
        i = rng.randrange(start, len(b))
        n = rng.choice([1, 4, 16, 256])
        fill = rng.choice([0, 0xFF, 0x7F, 0x80])
        b[i:i + n] = bytes([fill]) * len(b[i:i + n])
        return bytes(b), f"{n} bytes at {i} set to {fill:#x}"
    if k == 3:
        i = rng.randrange(len(b))
        n = rng.choice([1, 16, 1024])
        return bytes(b[:i] + b[i:i + n] + b[i:]), f"duplicate {n} bytes at {i}"
    if k == 4:
        i = rng.randrange(len(b))
        n = rng.choice([1, 16, 1024])
        return bytes(b[:i] + b[i + n:]), f"delete {n} bytes at {i}"
    i = rng.randrange(start, len(b))
    junk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 8, 64])))
    return bytes(b[:i] + junk + b[i:]), f"insert {len(junk)} random bytes at {i}"


def image_header_size(rng, data):
    """Set the width/height a PNG's IHDR or a JPEG's SOF declares to extreme values (the CRC of the
    PNG chunk is left stale half of the time); returns (bytes, description) or None."""
    b = bytearray(data)
    w, h = rng.choice([0, 1, 65535, 30000, 2 ** 31 - 1, 2 ** 32 - 1, 100000]), rng.choice([0, 1, 65535, 30000])
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        b[16:20], b[20:24] = w.to_bytes(4, "big"), h.to_bytes(4, "big")
        if rng.random() < 0.5:
            import zlib
            b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, "big")
        return bytes(b), f"PNG IHDR {w} x {h}"
    if b[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 <= len(b) and b[pos] == 0xFF:
            marker, length = b[pos + 1], b[pos + 2] << 8 | b[pos + 3]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                b[pos + 5:pos + 7], b[pos + 7:pos + 9] = (h & 0xFFFF).to_bytes(2, "big"), (w & 0xFFFF).to_bytes(2, "big")
                return bytes(b), f"JPEG SOF {w & 0xFFFF} x {h & 0xFFFF}"
            pos += 2 + length
    return None


def new_rng(seed, index):
    return random.Random(seed * 1_000_003 + index)
