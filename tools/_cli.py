"""What every recaffe command line shares: the error convention and gflags-style flag spellings.

``run(main)``: calls ``main()``; a RecaffeError, or an OSError / UnicodeDecodeError from bad input
(missing file, unreadable folder...), becomes ONE line ``TOOL: error: message`` on stderr and exit
status 2 (Caffe's tools abort on such input; Python users get a clean line instead of a traceback).
``--debug`` anywhere on the command line (removed before ``main`` sees argv) shows the traceback.
Ctrl-C exits 130 with one line.

``FlagParser``: an ``argparse.ArgumentParser`` that also accepts Caffe's gflags spellings
(tools/caffe.cpp uses gflags): ``-solver=x``, ``-solver x``, ``--solver=x``, ``--solver x``, and for
booleans ``-flag``, ``--flag=false``, ``--noflag``. Usage errors raise UsageError (-> one line, exit 2).
"""
import argparse
import os
import re
import sys
import traceback

from recaffe.protos.errors import RecaffeError

_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")


class UsageError(RecaffeError):
    """Bad command line (unknown flag, missing argument...)."""


def tool_name(argv0=None):
    """`upgrade_net_proto_text` for `.../tools/upgrade_net_proto_text.py` or `python -m recaffe.tools.x`."""
    base = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] or "recaffe"))
    return base[:-3] if base.endswith(".py") else base


def _one_line(text):
    first = str(text).strip().split("\n", 1)[0]
    return first or "failed"


def run(main, name=None):
    """Run ``main()`` under the CLI error convention and exit with its return value (None -> 0)."""
    name = name or tool_name()
    debug = False
    for flag in ("--debug", "-debug"):
        while flag in sys.argv[1:]:
            sys.argv.remove(flag)
            debug = True
    try:
        rc = main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except (RecaffeError, OSError, UnicodeDecodeError) as e:
        if debug:
            traceback.print_exc()
        if isinstance(e, OSError) and not isinstance(e, RecaffeError) and e.filename is not None:
            msg = f"{e.filename}: {e.strerror or e}"
        else:
            msg = _one_line(e)
        print(f"{name}: error: {_one_line(msg)}", file=sys.stderr)
        sys.exit(2)
    sys.exit(rc or 0)


class FlagParser(argparse.ArgumentParser):
    """argparse with gflags spellings; see the module docstring."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._bools = set()

    def add_flag(self, name, default=None, type=str, help=None, required=False):
        """A long flag ``--name`` (bool flags take an optional true/false value)."""
        dest = name.replace("-", "_")
        if type is bool:
            self._bools.add(name)
            self.add_argument("--" + name, dest=dest, action="store_true", default=bool(default), help=help)
            self.add_argument("--no" + name, dest=dest, action="store_false", help=argparse.SUPPRESS)
        else:
            self.add_argument("--" + name, dest=dest, default=default, type=type, help=help,
                              required=required)

    def _normalize(self, argv):
        known = {s[2:] for a in self._actions for s in a.option_strings if s.startswith("--")}
        out = []
        for a in argv:
            m = re.match(r"^--?([A-Za-z_][\w-]*)(=.*)?$", a)
            if m and m.group(1) in self._bools and m.group(2):
                v = m.group(2)[1:].lower()
                if v not in _TRUE + _FALSE:
                    raise UsageError(f"flag --{m.group(1)} expects true or false, got {m.group(2)[1:]!r}")
                out.append(("--" if v in _TRUE else "--no") + m.group(1))
            elif m and m.group(1) in known:
                out.append("--" + m.group(1) + (m.group(2) or ""))
            else:
                out.append(a)
        return out

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        return super().parse_args(self._normalize(argv), namespace)

    def error(self, message):
        raise UsageError(f"{message} (usage: {self.format_usage().strip()[7:]})")

