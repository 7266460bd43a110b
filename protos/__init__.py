"""Caffe's schema (wire-compatible caffe.proto), prototxt/binary I/O and legacy upgrades."""
from . import caffe_pb2  # noqa: F401
from .errors import RecaffeError, ProtoError, NetError, WeightsError, SolverError, DataError  # noqa: F401
from .io import read_net, read_solver, read_text  # noqa: F401
