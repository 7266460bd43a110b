"""Reading and writing Caffe messages (prototxt text, binary). STUB: to be completed by the protos work.

Public API (stable; other packages rely on it):
  read_net(source, lenient=False) -> caffe_pb2.NetParameter, upgraded to the current (V2) format.
      source: a path to a .prototxt/.caffemodel, prototxt text, or a NetParameter.
  read_solver(source, lenient=False) -> caffe_pb2.SolverParameter (solver_type upgraded to type).
  read_text(path_or_text, message_cls, lenient=False) / write_text(message, path) (atomic)
  read_binary(path, message_cls) / write_binary(message, path) (atomic)
  read_blobproto(path) -> numpy array ; write_blobproto(array, path)
  blobproto_to_array(blob) / array_to_blobproto(array)
"""
import os

from google.protobuf import text_format

from . import caffe_pb2
from .errors import ProtoError


def _looks_like_path(s):
    return isinstance(s, (str, os.PathLike)) and "\n" not in str(s) and "{" not in str(s) and ":" not in str(s).split("/")[-1]


def read_text(source, message_cls, lenient=False):
    msg = message_cls()
    if _looks_like_path(source):
        path = str(source)
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise ProtoError(f"{path}: cannot read: {e.strerror}") from None
    else:
        path, text = "<string>", source
    try:
        text_format.Merge(text, msg, allow_unknown_field=lenient)
    except text_format.ParseError as e:
        raise ProtoError(f"{path}:{e}") from None
    return msg


def read_net(source, lenient=False):
    if isinstance(source, caffe_pb2.NetParameter):
        return source
    return read_text(source, caffe_pb2.NetParameter, lenient)


def read_solver(source, lenient=False):
    if isinstance(source, caffe_pb2.SolverParameter):
        return source
    return read_text(source, caffe_pb2.SolverParameter, lenient)
