"""Run inside real Caffe once: render its compiled schema as .proto source (no comments carried over).

    ../shared/oracle/caffe-run python3 tests/oracle/render_proto.py > protos/caffe.proto.new

This is how protos/caffe.proto was bootstrapped; the file is ours from then on, and
tests/test_proto_schema.py keeps it wire-compatible with the oracle field by field.
"""
from google.protobuf import descriptor_pb2
from caffe.proto import caffe_pb2

T = descriptor_pb2.FieldDescriptorProto
SCALARS = {T.TYPE_DOUBLE: "double", T.TYPE_FLOAT: "float", T.TYPE_INT64: "int64", T.TYPE_UINT64: "uint64",
           T.TYPE_INT32: "int32", T.TYPE_FIXED64: "fixed64", T.TYPE_FIXED32: "fixed32", T.TYPE_BOOL: "bool",
           T.TYPE_STRING: "string", T.TYPE_BYTES: "bytes", T.TYPE_UINT32: "uint32", T.TYPE_SFIXED32: "sfixed32",
           T.TYPE_SFIXED64: "sfixed64", T.TYPE_SINT32: "sint32", T.TYPE_SINT64: "sint64"}
LABELS = {T.LABEL_OPTIONAL: "optional", T.LABEL_REPEATED: "repeated", T.LABEL_REQUIRED: "required"}

fdp = descriptor_pb2.FileDescriptorProto()
caffe_pb2.DESCRIPTOR.CopyToProto(fdp)
out = []


def type_name(f, scope):
    if f.type in SCALARS:
        return SCALARS[f.type]
    name = f.type_name.lstrip(".")
    if name.startswith("caffe."):
        name = name[len("caffe."):]
    if name.startswith(scope + "."):
        name = name[len(scope) + 1:]
    return name


def enum(e, ind):
    out.append(f"{ind}enum {e.name} {{")
    for v in e.value:
        out.append(f"{ind}  {v.name} = {v.number};")
    out.append(f"{ind}}}")


def message(m, ind, scope):
    out.append(f"{ind}message {m.name} {{")
    inner = scope + "." + m.name if scope else m.name
    for e in m.enum_type:
        enum(e, ind + "  ")
    for n in m.nested_type:
        message(n, ind + "  ", inner)
    for f in m.field:
        opts = []
        if f.HasField("default_value"):
            v = f.default_value
            if f.type in (T.TYPE_STRING, T.TYPE_BYTES):
                v = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            opts.append(f"default = {v}")
        if f.options.HasField("packed"):
            opts.append(f"packed = {'true' if f.options.packed else 'false'}")
        o = f" [{', '.join(opts)}]" if opts else ""
        out.append(f"{ind}  {LABELS[f.label]} {type_name(f, inner)} {f.name} = {f.number}{o};")
    out.append(f"{ind}}}")


out.append('syntax = "proto2";')
out.append("")
out.append("// recaffe's copy of the BVLC Caffe 1.0 (2018 master) schema: same messages, field names,")
out.append("// numbers, types, labels and defaults, so files are interchangeable with Caffe's.")
out.append("")
out.append(f"package {fdp.package};")
for e in fdp.enum_type:
    out.append("")
    enum(e, "")
for m in fdp.message_type:
    out.append("")
    message(m, "", "")
print("\n".join(out))
