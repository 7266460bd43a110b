"""The one flag parser of recaffe's command lines, with gflags' spellings and help layout (Caffe's tools
parse their flags with gflags: tools/caffe.cpp, tools/convert_imageset.cpp...).

Spellings: ``-flag=value``, ``--flag=value``, ``-flag value``, ``--flag value``; booleans ``-flag``,
``-flag=true|false`` (also 1/0, yes/no, t/f, y/n), ``-noflag`` (and ``--no-flag``); ``--`` ends the flags.
Flags and positional arguments mix freely, as gflags allows, unless the parser is made with
``interspersed=False`` (then the first positional argument and all after it are positional: a script
runner's own flags stop where the script's arguments begin).

``-help``, ``-h``, ``--help``, ``-helpshort``, ``-helpfull`` print the tool's help and exit 0: the usage,
then every flag as gflags' ``DescribeOneFlag`` (gflags/src/gflags_reporting.cc) lays it out::

    -solver (The solver definition protocol buffer text file.) type: string
      default: ""

wrapped before column 80 with a 6-space continuation indent (tests/golden/cli/caffe_helpshort.txt is real
Caffe's ``caffe -helpshort``, reproduced by this module). Every tool also takes ``-debug`` (the error
boundary, tools/_cli.py, shows the traceback).

Bad command lines raise UsageError, a RecaffeError: one line on stderr and exit status 2 (tools/_cli.py).
"""
import argparse
import re
import sys

from recaffe.protos.errors import RecaffeError

_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")
_HELP = ("help", "h", "helpshort", "helpfull")
_TYPE_NAMES = {str: "string", int: "int32", float: "double", bool: "bool"}
_LINE = 80          # gflags' kLineLength
_FLAG = re.compile(r"^--?([A-Za-z_][\w-]*)(?:=(.*))?$", re.S)
DEBUG_HELP = "Show the Python traceback of an error (also RECAFFE_DEBUG=1)."


class UsageError(RecaffeError):
    """Bad command line (unknown flag, missing argument, bad value...)."""


class Flag:
    """One flag: ``name`` (``-name`` on the command line; ``dest`` has '_' for '-'), its type (str, int,
    float or bool), default and one-line description."""

    def __init__(self, name, type=str, default=None, help="", required=False):
        if type not in _TYPE_NAMES:
            raise ValueError(f"flag -{name}: type must be one of str, int, float, bool")
        self.name, self.type, self.help, self.required = name, type, help or "", required
        self.default = bool(default) if type is bool else default
        self.dest = name.replace("-", "_")

    def convert(self, text, spelled):
        if self.type is bool:
            v = text.lower()
            if v not in _TRUE + _FALSE:
                raise UsageError(f"flag {spelled} expects true or false, got '{text}'")
            return v in _TRUE
        try:
            return self.type(text)
        except ValueError:
            raise UsageError(f"flag {spelled}: invalid {_TYPE_NAMES[self.type]} value '{text}'") from None

    def default_text(self):
        """gflags' ``default: ...`` spelling: strings quoted, bools true/false, doubles %.17g."""
        d = self.default
        if d is None:
            return "none"
        if self.type is bool:
            return "true" if d else "false"
        if self.type is float:
            return "%.17g" % d
        if self.type is str:
            return f'"{d}"'
        return str(d)

    def describe(self):
        """The flag's entry in the help, laid out as gflags' DescribeOneFlag does."""
        text = f"    -{self.name} ({self.help})"
        out, col = "", 0
        while True:
            if col + len(text) < _LINE:
                out += text
                col += len(text)
                break
            cut = _LINE - col - 1
            while cut > 0 and not text[cut].isspace():
                cut -= 1
            if cut <= 0:                     # no space to break at: the rest on this line
                out += text
                col = _LINE
                break
            out += text[:cut]
            text = text[cut:].lstrip()
            if not text:
                break
            out += "\n      "
            col = 6
        for part in (f"type: {_TYPE_NAMES[self.type]}", f"default: {self.default_text()}"):
            if col + 1 + len(part) >= _LINE:
                out += "\n      " + part
                col = 6 + len(part)
            else:
                out += " " + part
                col += 1 + len(part)
        return out


class _Positional:
    def __init__(self, name, nargs=None, metavar=None, help=""):
        if nargs not in (None, "?", "*", "+"):
            raise ValueError(f"argument {name}: nargs must be None, '?', '*' or '+'")
        self.name, self.nargs, self.metavar, self.help = name, nargs, metavar or name.upper(), help or ""

    def usage(self):
        return {None: self.metavar, "?": f"[{self.metavar}]", "*": f"[{self.metavar}...]",
                "+": f"{self.metavar}..."}[self.nargs]


class FlagParser:
    """``add_flag``/``add`` declare flags, ``add_argument`` positional arguments (nargs None, '?', '*',
    '+'); ``parse_args(argv)`` returns an argparse.Namespace (flags by ``dest``, positionals by name)."""

    def __init__(self, prog, description="", usage=None, interspersed=True, epilog=""):
        self.prog, self.description, self.epilog = prog, description, epilog
        self._usage, self.interspersed = usage, interspersed
        self.flags, self.hidden, self.positionals = {}, set(), []
        self.given = set()           # dests of the flags set on the last parsed command line
        self.add(Flag("debug", bool, False, DEBUG_HELP))

    def add(self, flag, show=True):
        """Add a Flag (``show=False``: accepted, but not listed by -help)."""
        self.flags[flag.name] = flag
        (self.hidden.discard if show else self.hidden.add)(flag.name)
        return flag

    def add_flag(self, name, default=None, type=str, help=None, required=False):
        return self.add(Flag(name, type, default, help, required))

    def add_argument(self, name, nargs=None, metavar=None, help=None):
        """A positional argument (flags are declared with add_flag: there is one flag parser)."""
        if name.startswith("-"):
            raise ValueError(f"add_argument({name!r}): flags are declared with add_flag(name, default, type, help)")
        self.positionals.append(_Positional(name, nargs, metavar, help))

    # -- help --------------------------------------------------------------------------------------
    def format_usage(self):
        if self._usage:
            return self._usage
        pos = " ".join(p.usage() for p in self.positionals)
        return f"{self.prog} [flags]" + (f" {pos}" if pos else "")

    def format_help(self):
        lines = [f"{self.prog}: {self.description}" if self.description else self.prog,
                 f"usage: {self.format_usage()}", ""]
        if any(p.help for p in self.positionals):
            lines.append("  Arguments:")
            width = max(len(p.metavar) for p in self.positionals)
            lines += [f"    {p.metavar:<{width}}  {p.help}".rstrip() for p in self.positionals]
            lines.append("")
        lines.append("  Flags:")
        lines += [f.describe() for n, f in sorted(self.flags.items()) if n not in self.hidden]
        if self.epilog:
            lines += ["", self.epilog]
        return "\n".join(lines) + "\n"

    def print_help(self, file=None):
        (file or sys.stdout).write(self.format_help())

    def error(self, message):
        raise UsageError(f"{message} (usage: {self.format_usage()}; -help lists the flags)")

    # -- parsing -----------------------------------------------------------------------------------
    def _lookup(self, name):
        """(flag, value for a bare -noX) for a spelled name."""
        if name in self.flags:
            return self.flags[name], None
        for prefix in ("no-", "no"):
            base = name[len(prefix):] if name.startswith(prefix) else None
            if base in self.flags and self.flags[base].type is bool:
                return self.flags[base], False
        return None, None

    def parse(self, argv=None):
        """({dest: value}, [positional strings]); also sets ``self.given``."""
        args = list(sys.argv[1:] if argv is None else argv)
        values = {f.dest: f.default for f in self.flags.values()}
        pos, given, i = [], set(), 0
        while i < len(args):
            a = args[i]
            i += 1
            if a == "--":
                pos += args[i:]
                break
            m = _FLAG.match(a)
            if not m:
                pos.append(a)
                if not self.interspersed:
                    pos += args[i:]
                    break
                continue
            name, value = m.group(1), m.group(2)
            flag, negated = self._lookup(name)
            if flag is None and name in _HELP:
                self.print_help()
                raise SystemExit(0)
            if flag is None:
                shown = sorted(n for n in self.flags if n not in self.hidden)
                self.error(f"unknown flag '{a}'; valid: " + ", ".join("-" + n for n in shown))
            if negated is not None:
                if value is not None:
                    self.error(f"flag {a.split('=')[0]} takes no value")
                values[flag.dest] = False
            elif flag.type is bool:
                values[flag.dest] = True if value is None else flag.convert(value, "-" + name)
            else:
                if value is None:
                    if i >= len(args):
                        self.error(f"flag -{name} is missing its value")
                    value, i = args[i], i + 1
                values[flag.dest] = flag.convert(value, "-" + name)
            given.add(flag.dest)
        for f in self.flags.values():
            if f.required and f.dest not in given:
                self.error(f"flag -{f.name} is required")
        self.given = given
        return values, pos

    def _assign(self, pos):
        """{positional name: value} from the positional strings, in declaration order."""
        out, rest = {}, list(pos)
        for k, p in enumerate(self.positionals):
            later = sum(1 for q in self.positionals[k + 1:] if q.nargs in (None, "+"))
            if p.nargs is None or p.nargs == "?":
                if not rest or (p.nargs == "?" and len(rest) <= later):
                    if p.nargs is None:
                        self.error(f"missing argument {p.metavar}")
                    out[p.name] = None
                    continue
                out[p.name] = rest.pop(0)
            else:
                take = max(len(rest) - later, 0)
                if p.nargs == "+" and take == 0:
                    self.error(f"missing argument {p.metavar}")
                out[p.name], rest = rest[:take], rest[take:]
        if rest:
            self.error(f"unexpected argument '{rest[0]}'")
        return out

    def parse_args(self, args=None, namespace=None):
        values, pos = self.parse(args)
        values.update(self._assign(pos))
        ns = namespace or argparse.Namespace()
        for k, v in values.items():
            setattr(ns, k, v)
        return ns
