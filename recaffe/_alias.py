"""Make ``import caffe`` (and ``caffe.io``, ``caffe.proto.caffe_pb2``, ``from caffe import layers``...)
resolve to recaffe, for legacy scripts run unchanged (tools/pycaffe.py).

A meta-path finder answers for ``caffe`` and every ``caffe.<sub>`` by importing ``recaffe.<sub>`` and
handing back that very module object, so both names share one module (one Net class, one caffe_pb2).
Every pycaffe submodule (classifier, coord_map, detector, draw, io, net_spec, proto, pycaffe) has its
recaffe counterpart; a name recaffe lacks stays unresolvable, with the usual ModuleNotFoundError.
"""
import importlib
import importlib.abc
import importlib.util
import sys

ALIAS, TARGET = "caffe", "recaffe"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        real = TARGET + fullname[len(ALIAS):]
        try:
            if importlib.util.find_spec(real) is None:
                return None
        except ModuleNotFoundError:
            return None
        is_pkg = hasattr(importlib.import_module(real), "__path__")
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real), is_package=is_pkg)


def install_caffe_alias():
    """Route ``import caffe...`` to recaffe in this process (idempotent). A real pycaffe already
    imported stays in place; call this before the script's first ``import caffe``."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
