"""``caffe.net_spec`` of pycaffe (python/caffe/net_spec.py): the NetSpec DSL, from netspec.spec
(``Layers``/``Parameters`` are the classes of ``layers``/``params``)."""
from recaffe.netspec.spec import (NetSpec, Top, Function, layers, params, to_proto, param_name_dict,  # noqa: F401
                                  assign_proto, _Layers as Layers, _Params as Parameters)

__all__ = ["NetSpec", "Top", "Function", "layers", "params", "to_proto", "param_name_dict", "assign_proto",
           "Layers", "Parameters"]
