"""The error boundary of every recaffe command line: ``run(main)``.

Every console script (setup.py) and every executable in tools/ enters through ``run`` (each tool module's
``cli()``):

* a RecaffeError (bad prototxt, solver, weights, data, command line...) or an OSError / UnicodeDecodeError
  from the file system -> ONE line ``TOOL: error: message`` on stderr, exit status 2. Caffe's tools abort on
  such input with a CHECK failure; here the line says what to fix.
* any other exception (a bug in recaffe or in a library under it) -> ``TOOL: error: ExcType: message`` and
  ``TOOL: rerun with --debug (or RECAFFE_DEBUG=1) for the traceback``, exit status 1: the status Python
  gives an uncaught exception, kept apart from 2 so that a script can tell "fix the input" (2) from
  "recaffe failed" (1). (upgrade_net_proto_text also exits 1 for Caffe's "not fully compatible" upgrade,
  with its warnings and no error line.)
* ``--debug`` / ``-debug`` on the command line (taken out before ``main`` sees it), or RECAFFE_DEBUG=1 (any
  value but 0/false/empty) in the environment: the traceback is printed first, then the same line(s).
* Ctrl-C (KeyboardInterrupt) -> ``TOOL: interrupted``, exit status 130 (128 + SIGINT, as shells report it).
  ``caffe train`` handles SIGINT itself (-sigint_effect), as Caffe does.
* a closed output pipe (``tool | head``) -> exit 0 quietly.

``main`` returns the exit status (None -> 0); SystemExit passes through (-help exits 0).

FlagParser and UsageError (the one flag parser) live in tools/flags.py and are re-exported here.
"""
import os
import sys
import traceback

from recaffe.protos.errors import RecaffeError
from .flags import Flag, FlagParser, UsageError  # noqa: F401  (re-exported: tools import them from here)

HINT = "rerun with --debug (or RECAFFE_DEBUG=1) for the traceback"
BAD_INPUT, FAILED, INTERRUPTED = 2, 1, 130
_DEBUG_FLAGS = ("--debug", "-debug", "--debug=true", "-debug=true")


def tool_name(argv0=None):
    """`upgrade_net_proto_text` for `.../tools/upgrade_net_proto_text[.py]` or `python -m recaffe.tools.x`."""
    base = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] or "recaffe"))
    return base[:-3] if base.endswith(".py") else base


def debug_from_env():
    return os.environ.get("RECAFFE_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _one_line(text):
    first = str(text).strip().split("\n", 1)[0].strip()
    return first


def _strip_debug(args, until_positional):
    """(args without the debug flags, whether one was there); with ``until_positional`` only the flags
    before the first positional argument count (a script runner's own flags)."""
    out, debug, own = [], False, True
    for a in args:
        if own and a in _DEBUG_FLAGS:
            debug = True
            continue
        if until_positional and (a == "--" or not a.startswith("-")):
            own = False
        out.append(a)
    return out, debug


def _message(e):
    """The one line for a bad-input error."""
    if isinstance(e, OSError) and not isinstance(e, RecaffeError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return _one_line(e) or type(e).__name__


def run(main, name=None, argv=None, until_positional=False):
    """Run ``main`` under the boundary and exit with its status. ``argv`` given: ``main(argv)`` (debug
    flags taken out); else ``main()`` after taking them out of ``sys.argv``. ``until_positional``: see
    _strip_debug."""
    name = name or tool_name()
    args, debug = _strip_debug(sys.argv[1:] if argv is None else list(argv), until_positional)
    debug = debug or debug_from_env()
    try:
        if argv is None:
            sys.argv[1:] = args
            rc = main()
        else:
            rc = main(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except BrokenPipeError:
        try:   # Python's advice: point stdout at /dev/null so the flush at exit cannot fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        sys.exit(0)
    except (RecaffeError, OSError, UnicodeDecodeError) as e:
        if debug:
            traceback.print_exc()
        print(f"{name}: error: {_message(e)}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    except Exception as e:   # noqa: BLE001  (the boundary: nothing unforeseen leaves as a bare traceback)
        if debug:
            traceback.print_exc()
        msg = _one_line(e)
        print(f"{name}: error: {type(e).__name__}" + (f": {msg}" if msg else ""), file=sys.stderr)
        if not debug:
            print(f"{name}: {HINT}", file=sys.stderr)
        sys.exit(FAILED)
    sys.exit(rc or 0)
