"""Caffe's schema (wire-compatible caffe.proto), prototxt/binary I/O and legacy upgrades."""
from . import caffe_pb2  # noqa: F401
from .errors import RecaffeError, ProtoError, NetError, WeightsError, SolverError, DataError  # noqa: F401
from .forks import ProtoWarning  # noqa: F401
from .io import (read_net, read_solver, read_text, write_text, read_binary, write_binary,  # noqa: F401
                 read_blobproto, write_blobproto, blobproto_to_array, array_to_blobproto)
from .upgrade import upgrade_net, upgrade_solver  # noqa: F401
