"""Schema of a protobuf FileDescriptor as plain data; shared by the oracle dump and the test.

Works with the old protobuf (3.12, in the oracle) and the new one (ours)."""
from google.protobuf import descriptor_pb2


def dump_file(file_descriptor):
    fdp = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(fdp)
    out = {"package": fdp.package, "syntax": fdp.syntax or "proto2", "messages": {}, "enums": {}}

    def enum(e):
        return {v.name: v.number for v in e.value}

    def msg(m, prefix):
        name = prefix + m.name
        fields = {}
        for f in m.field:
            fields[f.name] = {
                "number": f.number,
                "type": f.type,
                "label": f.label,
                "type_name": f.type_name.lstrip("."),
                "default": f.default_value if f.HasField("default_value") else None,
                "packed": bool(f.options.packed) if f.options.HasField("packed") else None,
            }
        out["messages"][name] = fields
        for e in m.enum_type:
            out["enums"][name + "." + e.name] = enum(e)
        for n in m.nested_type:
            msg(n, name + ".")

    for m in fdp.message_type:
        msg(m, "")
    for e in fdp.enum_type:
        out["enums"][e.name] = enum(e)
    return out
