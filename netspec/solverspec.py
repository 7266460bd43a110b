"""Protobuf messages from Python keywords and back to prototxt text: the solver builder, and the printer
and atomic writer shared by nets (netspec.spec) and solvers.

    s = SolverSpec(train_net='train.prototxt', test_net=['test.prototxt'], test_iter=100, test_interval=500,
                   base_lr=0.01, lr_policy='step', gamma=0.1, stepsize=1000, solver_mode='CPU')
    s.max_iter = 2000
    s.write('solver.prototxt')

Keyword values follow pycaffe's assign_proto (python/caffe/net_spec.py) with checked errors: dict ->
sub-message, list/tuple -> repeated field, a scalar for a repeated field -> one element; enums take ints
(`P.Solver.GPU`) or names ('GPU'); sub-messages also take a message (or, for *net_param, a NetSpec).

Printing: `to_prototxt(msg)` is the text pycaffe's NetSpec gives on the protobuf the project installs:
protobuf's own `text_format.MessageToString(msg)` (field-number order, two-space indent, octal escapes for
non-ASCII, floats as text_format spells them: `mean_value: 104.0`, `alpha: 0.0001`). Caffe reads every
spelling back to the same float32. (Under the upb backend plain `str(msg)` prints `104` for 104.0; the
shortest-float32 printer of recaffe.protos.printer stays for the files Caffe's C++ tools write.)
"""
import os

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from recaffe.protos import caffe_pb2
from recaffe.protos.printer import shortest_float32  # noqa: F401 (re-exported)
from recaffe.protos.errors import NetError, RecaffeError, SolverError
from recaffe.protos.files import atomic_write

__all__ = ["SolverSpec", "solver", "assign_fields", "to_prototxt", "shortest_float32", "write"]

_KIND = {FieldDescriptor.CPPTYPE_INT32: "an integer (int32)", FieldDescriptor.CPPTYPE_INT64: "an integer (int64)",
         FieldDescriptor.CPPTYPE_UINT32: "an integer (uint32)", FieldDescriptor.CPPTYPE_UINT64: "an integer (uint64)",
         FieldDescriptor.CPPTYPE_FLOAT: "a number (float)", FieldDescriptor.CPPTYPE_DOUBLE: "a number (double)",
         FieldDescriptor.CPPTYPE_BOOL: "a bool", FieldDescriptor.CPPTYPE_STRING: "a string"}


# ---------------------------------------------------------------- filling messages from Python values

def _field_list(desc):
    return ", ".join(sorted(f.name for f in desc.fields))


def _enum_value(fd, value, where, error):
    """An enum given as int (P.Pooling.MAX) or as a value name ('MAX'), checked against the enum."""
    et = fd.enum_type
    valid = ", ".join(f"{v.name}={v.number}" for v in et.values)
    if isinstance(value, str):
        v = et.values_by_name.get(value)
        if v is None:
            raise error(f"{where}: '{value}' is not a {et.full_name.split('.', 1)[-1]} name; valid: {valid}")
        return v.number
    try:
        number = int(value) if isinstance(value, bool) else value.__index__()
    except (AttributeError, TypeError):
        raise error(f"{where}: expected a {et.name} value, got {value!r}; valid: {valid}") from None
    if number not in et.values_by_number:
        raise error(f"{where}: {number} is not a {et.full_name.split('.', 1)[-1]} value; valid: {valid}")
    return number


def _scalar(fd, value, where, error):
    if fd.enum_type is not None:
        return _enum_value(fd, value, where, error)
    if isinstance(value, (dict, list, tuple, Message)):
        raise error(f"{where}: expected {_KIND.get(fd.cpp_type, 'a scalar')}, got {type(value).__name__}")
    return value


def _checked(action, fd, value, where, error):
    try:
        action()
    except (TypeError, ValueError) as e:
        raise error(f"{where}: expected {_KIND.get(fd.cpp_type, 'a scalar')}, got {value!r} "
                    f"({type(value).__name__}): {e}") from None


def _fill_message(msg, value, where, error):
    if isinstance(value, dict):
        for k, v in value.items():
            assign_fields(msg, k, v, f"{where}.{k}", error)
    elif isinstance(value, Message) and value.DESCRIPTOR is msg.DESCRIPTOR:
        msg.MergeFrom(value)
    elif not isinstance(value, Message) and hasattr(value, "to_proto") and msg.DESCRIPTOR.name == "NetParameter":
        msg.MergeFrom(value.to_proto())          # a NetSpec for net_param / train_net_param...
    else:
        raise error(f"{where}: expected a dict for message {msg.DESCRIPTOR.name}, got {type(value).__name__}")


def assign_fields(msg, name, value, where=None, error=NetError):
    """Set field `name` of protobuf message `msg` from a Python value (pycaffe's assign_proto rules, with
    checked errors): dict -> sub-message, list/tuple -> repeated field, scalar for a repeated field ->
    one element, enums by number or name. `where` names the spot for error messages."""
    where = where or name
    fd = msg.DESCRIPTOR.fields_by_name.get(name) if isinstance(name, str) else None
    if fd is None:
        raise error(f"{where}: {msg.DESCRIPTOR.name} has no field '{name}'; valid: {_field_list(msg.DESCRIPTOR)}")
    if fd.is_repeated:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        container = getattr(msg, name)
        for i, item in enumerate(items):
            spot = f"{where}[{i}]" if len(items) > 1 else where
            if fd.message_type is not None:
                _fill_message(container.add(), item, spot, error)
            else:
                item = _scalar(fd, item, spot, error)
                _checked(lambda: container.append(item), fd, item, spot, error)
    elif fd.message_type is not None:
        # An empty dict leaves the sub-message unset, as pycaffe's recursion does.
        _fill_message(getattr(msg, name), value, where, error)
    else:
        value = _scalar(fd, value, where, error)
        _checked(lambda: setattr(msg, name, value), fd, value, where, error)


# ---------------------------------------------------------------- printing and writing

def to_prototxt(msg):
    """Prototxt text of any message (or NetSpec, Top, SolverSpec), byte for byte what pycaffe's
    ``str(n.to_proto())`` prints through protobuf's text_format (see the module docstring)."""
    if not isinstance(msg, Message) and hasattr(msg, "to_proto"):
        msg = msg.to_proto()        # NetSpec, Top, SolverSpec
    if not isinstance(msg, Message):
        raise RecaffeError(f"to_prototxt: expected a protobuf message, NetSpec or SolverSpec, got {type(msg).__name__}")
    return text_format.MessageToString(msg)


def write(msg, path):
    """Write prototxt for a message / NetSpec / SolverSpec to `path` atomically (temp file, os.replace);
    an OSError propagates as open() would raise it."""
    text = to_prototxt(msg).encode("utf-8")

    def fill(tmp):
        with open(tmp, "wb") as f:
            f.write(text)
    atomic_write(path, fill, None)
    return os.fspath(path)


# ---------------------------------------------------------------- the solver builder

_SOLVER = caffe_pb2.SolverParameter.DESCRIPTOR


def _value(value):
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    return value.to_proto() if not isinstance(value, Message) and hasattr(value, "to_proto") else value


class SolverSpec:
    """A SolverParameter under construction; attribute assignment sets (and checks) a field, replacing
    what was there (also for repeated fields)."""

    def __init__(self, **fields):
        object.__setattr__(self, "_msg", caffe_pb2.SolverParameter())
        for name, value in fields.items():
            setattr(self, name, value)

    def __setattr__(self, name, value):
        if name not in _SOLVER.fields_by_name:
            valid = ", ".join(sorted(_SOLVER.fields_by_name))
            raise SolverError(f"solver field '{name}' does not exist; SolverParameter fields: {valid}")
        self._msg.ClearField(name)
        assign_fields(self._msg, name, _value(value), f"solver.{name}", SolverError)

    def __getattr__(self, name):
        if name.startswith("_") or name not in _SOLVER.fields_by_name:
            raise AttributeError(f"SolverSpec has no field '{name}'")
        return getattr(self._msg, name)

    def to_proto(self):
        """A copy of the SolverParameter built so far."""
        out = caffe_pb2.SolverParameter()
        out.CopyFrom(self._msg)
        return out

    def __str__(self):
        return to_prototxt(self._msg)

    def write(self, path):
        """Write solver prototxt to `path` atomically; returns the path."""
        return write(self._msg, path)


def solver(**fields):
    """A SolverParameter from keyword fields (see SolverSpec)."""
    return SolverSpec(**fields).to_proto()
