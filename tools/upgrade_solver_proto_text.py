"""upgrade_solver_proto_text: rewrite a solver prototxt with the old ``solver_type`` enum in the current
``type: "..."`` form (Caffe's tools/upgrade_solver_proto_text.cpp; rules: protos/upgrade.py). Nets
given inline (net_param, train_net_param, test_net_param) are upgraded too.

    python -m recaffe.tools.upgrade_solver_proto_text IN.prototxt OUT.prototxt

Exit status: 0 done, 2 bad input (one line on stderr; --debug shows the traceback).
"""
import pathlib
import sys

from recaffe.tools._cli import FlagParser, run


def main(argv=None):
    from recaffe.protos import io
    parser = FlagParser(prog="upgrade_solver_proto_text", description=__doc__.split("\n")[0])
    parser.add_argument("input", metavar="IN")
    parser.add_argument("output", metavar="OUT")
    args = parser.parse_args(argv)
    solver = io.read_solver(pathlib.Path(args.input))
    io.write_text(solver, args.output)
    print(f"{args.input}: wrote {args.output}", file=sys.stderr)
    return 0


def cli(argv=None):
    """Entry point (tools/upgrade_solver_proto_text, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "upgrade_solver_proto_text", argv)


if __name__ == "__main__":
    cli()
