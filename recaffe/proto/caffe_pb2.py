"""``import recaffe.proto.caffe_pb2`` (pycaffe's ``caffe.proto.caffe_pb2``): this module name is made an
alias of protos.caffe_pb2, so both names refer to one module and one set of message classes."""
import sys

from recaffe.protos import caffe_pb2 as _schema

sys.modules[__name__] = _schema
