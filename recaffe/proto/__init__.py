"""``caffe.proto`` of pycaffe: ``from recaffe.proto import caffe_pb2`` gives recaffe's wire-compatible schema
(protos/caffe_pb2.py, the same module object, so messages mix freely with the rest of recaffe)."""
from recaffe.protos import caffe_pb2  # noqa: F401

__all__ = ["caffe_pb2"]
