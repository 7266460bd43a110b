"""Reading ``.pth`` files (weights and ``.solverstate.pth``) as untrusted input.

``torch.load(weights_only=True)`` never runs code from the file: a pickle naming any other global
(a class, a function) is refused by torch's restricted unpickler. That refusal, and every other way
a file can be bad (empty, truncated zip, not a torch file, a dict of the wrong things), becomes one
line of the caller's error class naming the file and what was expected, instead of torch's
20-line UnpicklingError or an AttributeError deep in the copy.

The file itself is checked first (protos.limits.check_file): a regular file (not /dev/zero or a
FIFO), and not larger than the memory available.
"""
import pickle

import torch

from recaffe.protos import limits

#: dtypes a weight or history tensor may have (converted to the parameter's float32 on copy)
_NUMERIC = {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
            torch.int32, torch.int64}


def load(path, what, error):
    """The object in a .pth file, loaded with ``weights_only=True``; ``what`` names the kind of file in
    messages ('.pth weights', '.solverstate.pth')."""
    path = str(path)
    size = limits.check_file(path, what, error)
    limits.check_alloc(size, f"{path}: reading {what}", error)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().split("\n", 1)[0]
        if "Weights only load failed" in first or "Unsupported global" in str(e):
            raise error(f"{path}: cannot read {what}: the file holds Python objects other than tensors, "
                        "which recaffe never unpickles (torch.load weights_only=True); save a plain dict "
                        "of tensors (torch.save(net.state_dict())) instead") from None
        raise error(f"{path}: cannot read {what}: not a torch file ({first})") from None
    except EOFError:
        raise error(f"{path}: cannot read {what}: the file is empty or truncated") from None
    except MemoryError:
        raise error(f"{path}: cannot read {what}: not enough memory") from None
    except Exception as e:  # noqa: BLE001 - torch's zip/pickle readers on untrusted bytes
        first = str(e).strip().split("\n", 1)[0] or type(e).__name__
        raise error(f"{path}: cannot read {what}: not a valid torch file ({first})") from None


def check_tensor(value, path, where, error):
    """``value`` must be a dense numeric tensor (what torch.save of a state_dict writes)."""
    if not isinstance(value, torch.Tensor):
        raise error(f"{path}: {where} is a {type(value).__name__}, expected a tensor")
    if value.layout != torch.strided or value.dtype not in _NUMERIC or value.is_quantized:
        raise error(f"{path}: {where} is a {value.layout} {value.dtype} tensor, expected a dense numeric tensor")
    return value


def tensor_dict(obj, path, what, error):
    """``obj`` must be a dict of string keys and dense numeric tensors (a state_dict)."""
    if not isinstance(obj, dict):
        raise error(f"{path}: {what} must hold a dict '<layer>.<blob index>' -> tensor, got {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise error(f"{path}: {what} has a key {key!r} of type {type(key).__name__}; expected string keys "
                        f"'<layer>.<blob index>'")
        check_tensor(value, path, f"entry '{key}'", error)
    return obj


def solver_state(obj, path, error):
    """(iter, learned_net, current_step, [history tensors]) of a .solverstate.pth dict, type-checked."""
    what = ".solverstate.pth"
    if not isinstance(obj, dict):
        raise error(f"{path}: {what} must hold a dict with 'iter' and 'history', got {type(obj).__name__}")
    for key in ("iter", "history"):
        if key not in obj:
            raise error(f"{path}: {what} has no '{key}' entry (keys: {', '.join(map(repr, obj))})")
    ints = {}
    for key in ("iter", "current_step"):
        v = obj.get(key, 0)
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not -2 ** 31 <= v < 2 ** 31:
            raise error(f"{path}: {what} entry '{key}' is {v!r}; expected an int32 integer")
        ints[key] = v
    learned = obj.get("learned_net", "")
    if not isinstance(learned, str):
        raise error(f"{path}: {what} entry 'learned_net' is a {type(learned).__name__}; expected a file name")
    history = obj["history"]
    if not isinstance(history, (list, tuple)):
        raise error(f"{path}: {what} entry 'history' is a {type(history).__name__}; expected a list of tensors")
    for i, h in enumerate(history):
        check_tensor(h, path, f"history blob {i}", error)
    return ints["iter"], learned, ints["current_step"], list(history)
