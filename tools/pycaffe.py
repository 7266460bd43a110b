"""Run an unchanged pycaffe script (Python 3) on recaffe.

    recaffe-pycaffe [--allow-python-layers] SCRIPT [ARGS...]
    python -m recaffe.tools.pycaffe [--allow-python-layers] SCRIPT [ARGS...]

The script's ``import caffe`` (and ``caffe.io``, ``caffe.proto.caffe_pb2``, ``from caffe import layers``)
resolves to recaffe (recaffe._alias); it runs as ``__main__`` with ``sys.argv = [SCRIPT, ARGS...]`` and
its own folder first on ``sys.path``, as ``python SCRIPT ARGS`` would, so Python layer modules next to the
script import as in pycaffe. A Python layer runs code a prototxt names, so it needs the documented opt-in:
``--allow-python-layers`` here, or ``RECAFFE_ALLOW_PYTHON_LAYERS=1`` in the environment; without it the
net's construction raises an error naming that opt-in (``--no-python-layers`` refuses even when the
environment allows). The script's exceptions and exit status are its own.
"""
import os
import runpy
import sys

USAGE = "usage: pycaffe.py [--allow-python-layers | --no-python-layers] SCRIPT [ARGS...]"


def _ensure_repo_on_path():
    try:
        import recaffe  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    allow_python = None             # None: RECAFFE_ALLOW_PYTHON_LAYERS decides
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag == "--no-python-layers":
            allow_python = False
        elif flag == "--allow-python-layers":
            allow_python = True
        elif flag in ("--help", "-h"):
            print(__doc__.strip())
            return 0
        elif flag == "--":
            break
        else:
            print(f"pycaffe.py: unknown flag '{flag}'; {USAGE}", file=sys.stderr)
            return 2
    if not argv:
        print(f"pycaffe.py: no script given; {USAGE}", file=sys.stderr)
        return 2
    script = argv[0]
    if not os.path.isfile(script):
        print(f"pycaffe.py: {script}: no such script", file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]   # tools/ must not shadow modules
    _ensure_repo_on_path()
    from recaffe._alias import install_caffe_alias
    from recaffe.netspec.net.layers.python import allow_python_layers
    install_caffe_alias()
    allow_python_layers(allow_python)
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
