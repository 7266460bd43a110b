"""``caffe.pycaffe`` (python/caffe/pycaffe.py): the module that defines pycaffe's Net additions and
re-exports the solvers; here the same names, from the facade."""
from . import NCCL, Timer  # noqa: F401
from .net import Net  # noqa: F401
from .pysolver import (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,  # noqa: F401
                       AdamSolver)
