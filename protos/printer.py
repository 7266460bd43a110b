"""Prototxt printing: protobuf's text layout (fields in number order, two-space indent, octal escapes
as pycaffe's protobuf 3 printed them) with floats spelt as the shortest decimal that reads back to the
same float32, as Caffe's C++ tools print them ('0.01', not '0.009999999776482582' or '0.00999999978').
Fields of a fork (protos/forks.py) print after the message's own fields, under their fork names."""
import math
import struct

from google.protobuf import text_encoding
from google.protobuf.descriptor import FieldDescriptor

from . import forks


def shortest_float32(value):
    """The shortest decimal that reads back to the same float32, spelt as Python prints floats
    ('0.01', '104.0', '1e-05', '3e-42', 'inf'). protobuf's own ToShortestFloat starts at 6 digits, which
    is not the shortest for subnormals."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    for digits in range(1, 10):
        rounded = float(f"{value:.{digits}g}")
        try:
            if struct.unpack("<f", struct.pack("<f", rounded))[0] == value:
                return str(rounded)
        except OverflowError:         # rounded past the float32 range (near FLT_MAX)
            continue
    return str(value)


def _print_message(msg, indent, out, layer_type=None):
    pad = " " * indent
    if msg.DESCRIPTOR.full_name == "caffe.LayerParameter":
        layer_type = msg.type
    for fd, value in msg.ListFields():        # field-number order, as text_format and pycaffe
        for v in (value if fd.is_repeated else (value,)):
            if fd.message_type is not None:
                out.append(f"{pad}{fd.name} {{\n")
                _print_message(v, indent + 2, out, layer_type)
                out.append(f"{pad}}}\n")
                continue
            if fd.enum_type is not None:
                ev = fd.enum_type.values_by_number.get(v)
                text = ev.name if ev is not None else str(v)
            elif fd.cpp_type == FieldDescriptor.CPPTYPE_STRING:
                text = '"' + text_encoding.CEscape(v, as_utf8=False) + '"'
            elif fd.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
                text = "true" if v else "false"
            elif fd.cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
                text = shortest_float32(v)
            else:
                text = str(v)
            out.append(f"{pad}{fd.name}: {text}\n")
    fork = forks.printable_fork_fields(msg, layer_type)   # fields of a fork (protos/forkschema), last
    if fork is not None:
        _print_message(fork, indent, out, layer_type)


def message_to_text(msg):
    """Prototxt text of a protobuf message."""
    out = []
    _print_message(msg, 0, out)
    return "".join(out)
