"""recaffe as pycaffe: ``import recaffe as caffe`` and a pycaffe script runs (python/caffe/__init__.py).

    net = caffe.Net('deploy.prototxt', caffe.TEST, weights='w.caffemodel')
    net.blobs['data'].data[...] = x; out = net.forward()
    solver = caffe.get_solver('solver.prototxt'); solver.step(10)
    n = caffe.NetSpec(); n.data = caffe.layers.Input(...)

``tools/pycaffe.py SCRIPT`` runs an unchanged script whose ``import caffe`` should mean recaffe
(see recaffe._alias.install_caffe_alias).
"""
from recaffe.protos.caffe_pb2 import TRAIN, TEST  # noqa: F401
from recaffe.netspec.net.layers.python import PythonLayer as Layer  # noqa: F401
from recaffe.netspec.spec import NetSpec, layers, params, to_proto  # noqa: F401

from . import io, draw  # noqa: F401
from ._mode import (set_mode_cpu, set_mode_gpu, set_device, set_random_seed, solver_count,  # noqa: F401
                    solver_rank, set_solver_count, set_solver_rank, set_multiprocess, has_nccl, init_log, log,
                    Timer)
from ._refused import refused_class as _refused_class
from .net import Net  # noqa: F401
from .pysolver import (get_solver, SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver,  # noqa: F401
                     AdaDeltaSolver, AdamSolver)
from .classifier import Classifier  # noqa: F401
from .detector import Detector  # noqa: F401

__version__ = "1.0.0"
NCCL = _refused_class("caffe.NCCL")


def layer_type_list():
    """The registered layer type names, sorted (caffe.layer_type_list())."""
    from recaffe.netspec.net.layers.registry import layer_type_list as _types
    return list(_types())
