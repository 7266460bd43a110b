"""upgrade_net_proto_text: rewrite a legacy (V0/V1, input_dim, old BatchNorm) net prototxt in the current
format, as Caffe's tools/upgrade_net_proto_text.cpp does (rules: protos/upgrade.py).

    python -m recaffe.tools.upgrade_net_proto_text [--lenient] IN.prototxt OUT.prototxt
    python tools/upgrade_net_proto_text.py IN.prototxt OUT.prototxt

--lenient drops fields Caffe's schema does not know (fork files), with a warning each.
Exit status: 0 done (also when the file was already current), 1 upgraded with warnings (Caffe's "not
fully compatible"), 2 bad input (one line on stderr; --debug shows the traceback).
"""
import pathlib
import sys
import warnings

from recaffe.tools._cli import FlagParser, run


def main(argv=None):
    from recaffe.protos import caffe_pb2, io, upgrade
    parser = FlagParser(prog="upgrade_net_proto_text", description=__doc__.split("\n")[0])
    parser.add_argument("input", metavar="IN")
    parser.add_argument("output", metavar="OUT")
    parser.add_flag("lenient", False, bool, "drop unknown (fork) fields with a warning")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = io.read_text(pathlib.Path(args.input), caffe_pb2.NetParameter, lenient=args.lenient)
        if upgrade.needs_upgrade(net):
            net = upgrade.upgrade_net(net, args.input)
            note = "upgraded"
        else:
            note = "already in latest proto format"
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    io.write_text(net, args.output)
    print(f"{args.input}: {note}; wrote {args.output}", file=sys.stderr)
    partial = any("as Caffe does" in str(w.message) for w in caught)
    return 1 if partial else 0


def cli(argv=None):
    """Entry point (tools/upgrade_net_proto_text, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "upgrade_net_proto_text", argv)


if __name__ == "__main__":
    cli()
