"""Run an unchanged pycaffe script (Python 3) on recaffe.

    tools/pycaffe [--no-python-layers] SCRIPT [ARGS...]      (or recaffe-pycaffe, python -m recaffe.tools.pycaffe)

The script's ``import caffe`` (and ``caffe.io``, ``caffe.proto.caffe_pb2``, ``from caffe import layers``)
resolves to recaffe (recaffe._alias); it runs as ``__main__`` with ``sys.argv = [SCRIPT, ARGS...]`` and
its own folder first on ``sys.path``, as ``python SCRIPT ARGS`` would. Python layers named by the
script's nets are allowed, as in pycaffe (the script is code you chose to run anyway); pass
``--no-python-layers`` to refuse them. Only flags before SCRIPT are pycaffe's (``--debug`` included);
the rest belong to the script. The script's exceptions and exit status are its own: an exception prints
its traceback (from the script's frames on) and exits 1, as ``python SCRIPT`` does.
"""
import os
import runpy
import sys
import traceback

from recaffe.tools._cli import FlagParser, run


def parser():
    p = FlagParser("pycaffe", "run an unchanged pycaffe script on recaffe", interspersed=False)
    p.add_flag("python-layers", True, bool, "allow the script's nets Python layers (--no-python-layers: refuse)")
    p.add_argument("script", metavar="SCRIPT", help="the pycaffe script")
    p.add_argument("args", nargs="*", metavar="ARGS", help="its arguments")
    return p


def _print_script_traceback(e, script):
    """The traceback from the script's first frame on (runpy's and ours left out)."""
    tb, path = e.__traceback__, os.path.abspath(script)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb or e.__traceback__)


def main(argv=None):
    a = parser().parse_args(argv)
    if not os.path.isfile(a.script):
        raise FileNotFoundError(2, "no such script", a.script)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]   # tools/ must not shadow modules
    from recaffe._alias import install_caffe_alias
    from recaffe.netspec.net.layers.python import allow_python_layers
    install_caffe_alias()
    allow_python_layers(a.python_layers)
    sys.argv = [a.script] + list(a.args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.script)))
    try:
        runpy.run_path(a.script, run_name="__main__")
    except Exception as e:   # noqa: BLE001  (the script's own error: shown as Python would show it)
        _print_script_traceback(e, a.script)
        return 1
    return 0


def cli(argv=None):
    """Entry point (tools/pycaffe, recaffe-pycaffe): the error boundary for pycaffe's own flags only."""
    return run(main, "pycaffe", argv, until_positional=True)


if __name__ == "__main__":
    cli()
