"""Reading and writing Caffe messages: prototxt text, binary files, BlobProto arrays.

Public API (stable; other packages rely on it):
  read_net(source, lenient=False) -> caffe_pb2.NetParameter, upgraded to the current (V2) format.
      source: a path (.prototxt text or .caffemodel binary, told apart by content), prototxt text,
      bytes (text or binary), or a NetParameter (returned as is when already V2, else an upgraded copy).
  read_solver(source, lenient=False) -> caffe_pb2.SolverParameter (solver_type upgraded to type; nets
      given inline in net_param/train_net_param/test_net_param upgraded too, which Caffe 1.0 does not).
  read_text(path_or_text, message_cls, lenient=False) / write_text(message, path) (atomic)
  read_binary(path_or_bytes, message_cls) / write_binary(message, path) (atomic)
  read_blobproto(path) -> numpy array ; write_blobproto(array, path, legacy=False)
  blobproto_to_array(blob) / array_to_blobproto(array) / datum_to_array / array_to_datum

Readers follow src/caffe/util/io.cpp (ReadProtoFromTextFile / ReadProtoFromBinaryFile) and
src/caffe/util/upgrade_proto.cpp (ReadNetParamsFrom*FileOrDie, ReadSolverParamsFromTextFileOrDie).
Every failure is a ProtoError with one line ``path:line:col: what was wrong; what was expected``.
Fields of the forks in protos/forkschema are read as those forks define them (protos.forks); known
fork fields (protos.forks.FORK_FIELDS) are mapped with a warning; other unknown fields are an error
unless ``lenient=True``, which drops them with a warning.
"""
import os
import re

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from . import caffe_pb2, forks, upgrade
from .printer import message_to_text
from .blob import array_to_blobproto, array_to_datum, blobproto_to_array, datum_to_array  # noqa: F401
from .errors import ProtoError
from .files import atomic_write

_BINARY_EXT = (".caffemodel", ".binaryproto", ".solverstate", ".pb", ".bin")
_PATH_EXT = _BINARY_EXT + (".prototxt", ".pt", ".txt", ".proto")
_UNKNOWN_FIELD = re.compile(r'has no field named "')
_ENUM = re.compile(r'Enum type "([\w.]+)" has no value (?:named|with number) (\S+?)\.?$')


def _is_path(source):
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str) or not source:
        return False
    if os.path.exists(source) or not any(c in source for c in "\n{:"):
        return True
    return not any(c in source for c in " \t\n{") and source.endswith(_PATH_EXT)


def _load(source):
    """(path label, content as bytes) of a path; ProtoError when it cannot be read."""
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return path, f.read()
    except OSError as e:
        raise ProtoError(f"{path}: cannot read: {e.strerror}; expected an existing readable file") from None


def _looks_binary(data, path=""):
    if path.endswith(_BINARY_EXT):
        return True
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4  # a cut multi-byte character at the end is still text
    return any(c < " " and c not in "\t\n\r\f\v" for c in text)


def _friendly(err, path):
    """One line path:line:col: message out of protobuf's ParseError."""
    line, col = err.GetLine(), err.GetColumn()
    msg = str(err)
    msg = re.sub(r"^\d+:\d+ : ", "", msg)
    msg = re.sub(r"^'.*?': ", "", msg, count=1) if msg.startswith("'") else msg
    m = _ENUM.search(msg)
    if m:
        enum = caffe_pb2.DESCRIPTOR.pool.FindEnumTypeByName(m.group(1))
        names = ", ".join(v.name for v in enum.values)
        msg = f"invalid value {m.group(2)} for enum {m.group(1)}; expected one of {names}"
    elif msg.startswith("Expected"):
        msg = f"syntax error: {msg[0].lower()}{msg[1:].rstrip('.')}"
    elif "out of range" in msg:
        msg = f"{msg.rstrip('.')}; expected a value that fits the field's type in caffe.proto"
    elif "should not have multiple" in msg:
        msg = f"{msg.rstrip('.')}; expected it once (the field is not repeated)"
    where = f"{path}:{line}:{col}" if line else path
    return ProtoError(f"{where}: {msg.rstrip('.')}")


def _parse_text(text, message_cls, path, lenient):
    msg = message_cls()
    try:
        text_format.Parse(text, msg)
        return msg
    except text_format.ParseError as e:
        if not (lenient or _UNKNOWN_FIELD.search(str(e)) or _ENUM.search(str(e))):
            raise _friendly(e, path) from None
    cleaned, fork_fields = forks.clean(text, message_cls.DESCRIPTOR, path, lenient, ProtoError)
    msg = message_cls()
    try:
        text_format.Parse(cleaned, msg)
    except text_format.ParseError as e:
        raise _friendly(e, path) from None
    return forks.attach(msg, fork_fields)


def _decode(data, path):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtoError(f"{path}: not UTF-8 text at byte {e.start}; expected a prototxt file") from None


def read_text(source, message_cls, lenient=False):
    """A ``message_cls`` from prototxt text, or from a path to a prototxt file."""
    if _is_path(source):
        path, data = _load(source)
        return _parse_text(_decode(data, path), message_cls, path, lenient)
    if isinstance(source, bytes):
        return _parse_text(_decode(source, "<bytes>"), message_cls, "<bytes>", lenient)
    return _parse_text(source, message_cls, "<string>", lenient)


def read_binary(source, message_cls):
    """A ``message_cls`` from a binary file (path) or bytes, parsed by protobuf's C implementation."""
    path, data = ("<bytes>", source) if isinstance(source, (bytes, bytearray, memoryview)) else _load(source)
    try:
        return message_cls.FromString(bytes(data))
    except DecodeError as e:
        raise ProtoError(f"{path}: not a binary {message_cls.DESCRIPTOR.full_name} ({e}); expected a file "
                         "written by Caffe") from None


def _read_any(source, message_cls, lenient):
    """(message, path) from a path, text or bytes, telling binary from text by content."""
    if isinstance(source, message_cls):
        return source, "<message>"
    if _is_path(source):
        path, data = _load(source)
    elif isinstance(source, (bytes, bytearray)):
        path, data = "<bytes>", bytes(source)
    elif isinstance(source, str):
        return _parse_text(source, message_cls, "<string>", lenient), "<string>"
    else:
        raise ProtoError(f"cannot read a {message_cls.DESCRIPTOR.full_name} from {type(source).__name__}; "
                         "expected a path, prototxt text, bytes or a message")
    if _looks_binary(data, path):
        return read_binary(data if path == "<bytes>" else path, message_cls), path
    return _parse_text(_decode(data, path), message_cls, path, lenient), path


def read_net(source, lenient=False):
    """A NetParameter in the V2 format (``layer`` entries), from any of the sources above."""
    net, path = _read_any(source, caffe_pb2.NetParameter, lenient)
    forks.adopt(net)
    if not upgrade.needs_upgrade(net):
        return net
    return upgrade.upgrade_net(net, path)


def read_solver(source, lenient=False):
    """A SolverParameter with ``type`` (not the old ``solver_type``) and V2 inline nets."""
    solver, path = _read_any(source, caffe_pb2.SolverParameter, lenient)
    out = upgrade.upgrade_solver(solver, path)
    for field in ("net_param", "train_net_param"):
        if out.HasField(field) and upgrade.needs_upgrade(getattr(out, field)):
            getattr(out, field).CopyFrom(upgrade.upgrade_net(getattr(out, field), f"{path} ({field})"))
    for i, net in enumerate(out.test_net_param):
        if upgrade.needs_upgrade(net):
            net.CopyFrom(upgrade.upgrade_net(net, f"{path} (test_net_param {i})"))
    return out


def write_text(message, path):
    """Prototxt of ``message`` (fields in field-number order, as Caffe's WriteProtoToTextFile)."""
    atomic_write(path, message_to_text(message).encode("utf-8"))


def write_binary(message, path):
    atomic_write(path, message.SerializeToString())


def read_blobproto(source):
    """The array of a .binaryproto (mean file, infogain matrix...): (num, channels, height, width) for
    legacy dims, else the ``shape``; float32 (float64 when the file holds double_data)."""
    path, data = ("<bytes>", bytes(source)) if isinstance(source, (bytes, bytearray)) else _load(source)
    blob = read_binary(data, caffe_pb2.BlobProto) if path == "<bytes>" else None
    if blob is None:
        try:
            blob = caffe_pb2.BlobProto.FromString(data)
        except DecodeError as e:
            raise ProtoError(f"{path}: not a binary caffe.BlobProto ({e}); expected a .binaryproto "
                             "file") from None
    try:
        return blobproto_to_array(blob, raw=data)
    except ProtoError as e:
        raise ProtoError(f"{path}: {e}") from None


def write_blobproto(array, path, legacy=False):
    """Write ``array`` as a binary BlobProto (``legacy``: num/channels/height/width as
    compute_image_mean writes mean files; default: ``shape`` as pycaffe's array_to_blobproto)."""
    atomic_write(path, array_to_blobproto(array, legacy=legacy).SerializeToString())
