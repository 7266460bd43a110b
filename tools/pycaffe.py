"""Run an unchanged pycaffe script (Python 3) on recaffe.

    python -m recaffe.tools.pycaffe SCRIPT [ARGS...]
    python tools/pycaffe.py [--no-python-layers] SCRIPT [ARGS...]

The script's ``import caffe`` (and ``caffe.io``, ``caffe.proto.caffe_pb2``, ``from caffe import layers``)
resolves to recaffe (recaffe._alias); it runs as ``__main__`` with ``sys.argv = [SCRIPT, ARGS...]`` and
its own folder first on ``sys.path``, as ``python SCRIPT ARGS`` would. Python layers named by the
script's nets are allowed, as in pycaffe (the script is code you chose to run anyway); pass
``--no-python-layers`` to refuse them. The script's exceptions and exit status are its own.
"""
import os
import runpy
import sys

USAGE = "usage: pycaffe.py [--no-python-layers] SCRIPT [ARGS...]"


def _ensure_repo_on_path():
    try:
        import recaffe  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    allow_python = True
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag == "--no-python-layers":
            allow_python = False
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
