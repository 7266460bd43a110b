"""A small gflags-style command-line parser for the data tools (convert_imageset, compute_image_mean).

Accepts what Caffe's gflags accept: ``-flag=value``, ``--flag=value``, ``-flag value``,
``--flag value``; booleans as ``--flag``, ``--flag=true|false|1|0`` and ``--noflag``. Everything else
is a positional argument. Errors are DataError with a one-line message (the tool prints it, exit 2).
"""
from protos.errors import DataError

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


def parse_flags(argv, spec, usage):
    """spec: {name: default} (the default's type is the flag's type). Returns (flags dict, positionals)."""
    flags = dict(spec)
    pos = []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            pos.extend(args[i:])
            break
        if not a.startswith("-") or a == "-":
            pos.append(a)
            continue
        body = a.lstrip("-")
        name, eq, value = body.partition("=")
        name = name.replace("-", "_")
        if name in ("h", "help"):
            raise SystemExit(usage)
        if name not in spec and name.startswith("no") and isinstance(spec.get(name[2:]), bool) and not eq:
            flags[name[2:]] = False
            continue
        if name not in spec:
            raise DataError(f"unknown flag '{a}'; valid flags: "
                            + ", ".join("--" + k for k in sorted(spec)) + f"\n{usage}")
        default = spec[name]
        if isinstance(default, bool):
            if not eq:
                flags[name] = True
                continue
            if value.lower() not in _TRUE | _FALSE:
                raise DataError(f"flag --{name}: expected true or false, got {value!r}")
            flags[name] = value.lower() in _TRUE
            continue
        if not eq:
            if i >= len(args):
                raise DataError(f"flag --{name} needs a value")
            value = args[i]
            i += 1
        try:
            flags[name] = type(default)(value)
        except ValueError:
            raise DataError(f"flag --{name}: expected {type(default).__name__}, got {value!r}") from None
    return flags, pos
