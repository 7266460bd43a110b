"""The NetSpec DSL: write Caffe nets in Python, get the prototxt pycaffe's `caffe.net_spec` would write.

    from recaffe.netspec import layers as L, params as P, NetSpec
    n = NetSpec()
    n.data, n.label = L.Data(source='train_lmdb', backend=P.Data.LMDB, batch_size=64, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    print(to_prototxt(n.to_proto()))

Behaviour reproduced from python/caffe/net_spec.py (Caffe 1.0; summed up in caffe-spec.md section 8):
  * `L.<Type>(*bottoms, **kwargs)` accepts any type name; keyword arguments are routed through the protobuf
    descriptor, no per-layer code: a name ending in "param" goes on the LayerParameter, otherwise on the
    type's own message (`<type>_param`, found by message name, e.g. Convolution -> convolution_param) when
    it has such a field, else on the LayerParameter (loss_weight, include, name, top...).
  * values: dict -> sub-message, list -> repeated field (a list of dicts adds one message per dict), a
    scalar given for a repeated field is wrapped in a one-element list; enums take ints (`P.Pooling.MAX`)
    and, as an extension, their names ('MAX').
  * `ntop` (default 1) and `in_place` are consumed by the DSL; names are the NetSpec attribute names, or
    `<Type><k>` with one counter per type name, allocated as layers are emitted depth-first.
Unlike pycaffe, a bad keyword raises NetError at the `L.<Type>(...)` call naming the type and the valid
fields; an input that is not a Top raises a NetError that is also a TypeError (what pycaffe raises); the layer list is emitted without recursion, so very deep nets do not hit Python's stack limit.

Printing and writing (`to_prototxt`, `write`) and the solver builder (`solver`, `SolverSpec`) live in
netspec/solverspec.py and are re-exported here: `to_prototxt(n.to_proto())` is the text pycaffe prints
through protobuf's text_format, byte for byte (under protobuf's upb backend plain `str(...)` spells floats
differently, `104` for 104.0).
"""
import operator
from collections import Counter, OrderedDict

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

from .solverspec import SolverSpec, assign_fields, shortest_float32, solver, to_prototxt, write

__all__ = ["NetSpec", "Top", "Function", "layers", "params", "to_proto", "to_prototxt", "write", "shortest_float32",
           "assign_fields", "assign_proto", "param_name_dict", "solver", "SolverSpec"]

_LAYER = caffe_pb2.LayerParameter.DESCRIPTOR


def _typed_param_fields():
    """Layer type name -> its LayerParameter field, as pycaffe's param_name_dict builds it: the field's
    message name minus 'Parameter' (ConvolutionParameter -> convolution_param, TransformationParameter
    -> transform_param, PReLUParameter -> prelu_param)."""
    out = {}
    for f in _LAYER.fields:
        if f.name.endswith("_param") and f.message_type is not None:
            out[f.message_type.name[:-len("Parameter")]] = f.name
    return out


_TYPED_PARAM = _typed_param_fields()
_LAYER_OWN = sorted(f.name for f in _LAYER.fields if not f.name.endswith("_param"))


def _homes(field):
    """The *_param messages of LayerParameter that have a field named `field` (for error hints)."""
    return sorted(f.name for f in _LAYER.fields if f.name.endswith("_param") and f.message_type is not None
                  and field in f.message_type.fields_by_name)


def _unknown(type_name, k, typed_desc):
    where = f"L.{type_name}({k}=...)"
    own = (f"{typed_desc.name} fields: {', '.join(sorted(typed_desc.fields_by_name))}; " if typed_desc
           else f"'{type_name}' has no <type>_param message of its own; ")
    homes = sorted(_homes(k), key=lambda h: h != "loss_param" or not type_name.endswith("Loss"))
    hint = f" ('{k}' is a field of {', '.join(homes[:6])}: pass e.g. {homes[0]}=dict({k}=...))" if homes else ""
    return NetError(f"{where}: layer type '{type_name}' has no parameter '{k}'{hint}; valid: {own}"
                    f"LayerParameter fields: {', '.join(_LAYER_OWN)}, <layer>_param")


def _fill_layer(layer, type_name, kwargs):
    """Route each keyword as pycaffe's Function._to_proto does: a name ending in 'param' and any name the
    type's own message lacks go on the LayerParameter, the rest on `<type>_param`."""
    typed = _TYPED_PARAM.get(type_name)
    typed_desc = _LAYER.fields_by_name[typed].message_type if typed else None
    for k, v in kwargs.items():
        if k.endswith("param") or typed_desc is None or k not in typed_desc.fields_by_name:
            if k not in _LAYER.fields_by_name:
                raise _unknown(type_name, k, typed_desc)
            assign_fields(layer, k, v, f"L.{type_name}({k}=...)")
        else:
            assign_fields(getattr(layer, typed), k, v, f"L.{type_name}({k}=...): {typed}.{k}")


def param_name_dict():
    """pycaffe's net_spec.param_name_dict(): layer type -> typed field name minus '_param'."""
    return {t: f[:-len("_param")] for t, f in _TYPED_PARAM.items()}


def assign_proto(proto, name, val):
    """pycaffe's net_spec.assign_proto(proto, name, val), with checked errors (NetError)."""
    assign_fields(proto, name, val)


# ---------------------------------------------------------------- the DSL

class NotATopError(NetError, TypeError):
    """A layer input that is not a Top (pycaffe raises TypeError; a NetError too, for recaffe's CLI)."""


class Top:
    """Output number `n` of the layer (Function) `fn`."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top (all names automatic)."""
        return to_proto(self)

    def __repr__(self):
        return f"<Top {self.n} of L.{self.fn.type_name}>"


class Function:
    """One layer: its type name, input Tops, keyword parameters and `ntop` output Tops."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for i, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                hint = " (unpack a tuple of tops with *)" if isinstance(inp, (tuple, list)) else ""
                raise NotATopError(f"L.{type_name}: input {i} is not a Top (type is {type(inp).__name__}){hint}")
        self.inputs = tuple(inputs)
        self.params = dict(params)
        ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        try:
            self.ntop = operator.index(ntop) if not isinstance(ntop, bool) else -1
        except TypeError:
            self.ntop = -1
        if self.ntop < 0:
            raise NetError(f"L.{type_name}: ntop must be an integer >= 0, got {ntop!r}")
        _fill_layer(caffe_pb2.LayerParameter(), type_name, self.params)   # fail now, at the call site
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = f"{top.fn.type_name}{autonames[top.fn.type_name]}"
        return names[top]

    def _name(self, names, autonames):
        if self not in names:
            if self.ntop > 0:
                names[self] = self._top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _make_layer(self, layers, names, autonames):
        """The LayerParameter, once every input layer is in `layers` (naming order as pycaffe's)."""
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(layers[inp.fn].top[inp.n] for inp in self.inputs)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(t, names, autonames) for t in self.tops)
        layer.name = self._name(names, autonames)
        _fill_layer(layer, self.type_name, self.params)
        return layer

    def _to_proto(self, layers, names, autonames):
        """Emit this layer and, inputs first and depth-first in input order, every layer it needs."""
        stack = [(self, 0)]
        while stack:
            fn, i = stack.pop()
            if fn in layers:
                continue
            if i < len(fn.inputs):
                stack.append((fn, i + 1))
                child = fn.inputs[i].fn
                if child not in layers:
                    stack.append((child, 0))
            else:
                layers[fn] = fn._make_layer(layers, names, autonames)


def _function_of(value):
    return value if isinstance(value, Function) else value.fn


def to_proto(*tops):
    """A NetParameter holding every layer needed for `tops` (Tops, or Functions with ntop=0)."""
    layers, autonames = OrderedDict(), Counter()
    for top in tops:
        if not isinstance(top, (Top, Function)):
            raise NetError(f"to_proto: expected Tops, got {type(top).__name__}")
        _function_of(top)._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """An ordered set of named Tops: `n.conv1 = L.Convolution(...)` names that top (and its layer) conv1.
    If one Top is stored under several names the last one wins, as in pycaffe."""

    def __init__(self):
        object.__setattr__(self, "tops", OrderedDict())

    def __setattr__(self, name, value):
        if not isinstance(value, (Top, Function)):
            hint = "; unpack several outputs: n.a, n.b = L.X(..., ntop=2)" if isinstance(value, tuple) else ""
            raise NetError(f"NetSpec.{name}: expected a Top from L.<Type>(...), got {type(value).__name__}{hint}")
        self.tops[name] = value

    def __getattr__(self, name):
        tops = self.__dict__.get("tops", {})
        if name in tops:
            return tops[name]
        raise AttributeError(f"NetSpec has no top '{name}'; defined: {', '.join(tops) or 'none'}")

    __setitem__ = __setattr__

    def __getitem__(self, name):
        return self.tops[name]

    def __contains__(self, name):
        return name in self.tops

    def to_proto(self):
        """The NetParameter: layers in first-use order, each emitted once, assigned names used."""
        names = {v: k for k, v in self.tops.items()}
        layers, autonames = OrderedDict(), Counter()
        for top in self.tops.values():
            _function_of(top)._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class _Layers:
    """`L.<Type>(*bottoms, **kwargs)` for any type name: a Top (ntop=1), a tuple of Tops, or the Function
    itself (ntop=0)."""

    def __getattr__(self, type_name):
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def layer_fn(*bottoms, **kwargs):
            fn = Function(type_name, bottoms, kwargs)
            return fn if fn.ntop == 0 else fn.tops[0] if fn.ntop == 1 else fn.tops
        layer_fn.__name__ = type_name
        return layer_fn


class _NoSuchParam(NetError, AttributeError):
    """P.<Type>.<CONST> that does not exist (an AttributeError too, so hasattr() works)."""


class _EnumNames:
    def __init__(self, cls):
        self._cls = cls

    def __getattr__(self, const):
        if const.startswith("_"):
            raise AttributeError(const)
        desc = self._cls.DESCRIPTOR
        if const in desc.enum_values_by_name or const in desc.enum_types_by_name:
            return getattr(self._cls, const)
        valid = ", ".join(v.name for e in desc.enum_types for v in e.values) or "none"
        raise _NoSuchParam(f"P.{desc.name[:-len('Parameter')]}.{const}: {desc.name} has no such enum value; "
                       f"valid: {valid}")


class _Params:
    """`P.<Type>.<CONST>`: the enum constant of message <Type>Parameter, e.g. P.Pooling.MAX == 0."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = getattr(caffe_pb2, name + "Parameter", None)
        if cls is None:
            valid = sorted(m[:-len("Parameter")] for m in caffe_pb2.DESCRIPTOR.message_types_by_name
                           if m.endswith("Parameter") and caffe_pb2.DESCRIPTOR.message_types_by_name[m].enum_types)
            raise _NoSuchParam(f"P.{name}: there is no message {name}Parameter; with enums: {', '.join(valid)}")
        return _EnumNames(cls)


layers = _Layers()
params = _Params()
