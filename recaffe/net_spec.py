"""``caffe.net_spec`` of pycaffe (python/caffe/net_spec.py): the NetSpec DSL, from netspec.spec."""
from recaffe.netspec.spec import NetSpec, Top, Function, layers, params, to_proto, param_name_dict, assign_proto  # noqa: F401

__all__ = ["NetSpec", "Top", "Function", "layers", "params", "to_proto", "param_name_dict", "assign_proto"]
