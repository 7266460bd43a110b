"""``recaffe-export-onnx``: a deploy prototxt + weights as an ONNX model, checked against onnxruntime.

    tools/export_onnx -model deploy.prototxt -weights w.caffemodel out.onnx [-batch N|dynamic] [-opset K]
    recaffe-export-onnx ...; python -m recaffe.tools.export_onnx ...

Input and output names are the net's blob names (e.g. ``data`` -> ``prob``). ``-batch dynamic`` gives
a symbolic batch axis; ``-batch N`` fixes it (default: the prototxt's). After writing, onnxruntime runs
the file on random inputs and the largest difference from recaffe's outputs is printed. Needs the
``onnx`` extra (``pip install onnx onnxscript onnxruntime``). Logic: recaffe.netspec.net.export.
"""
import sys

from recaffe.tools._cli import FlagParser, UsageError, run


def main(argv=None):
    p = FlagParser(prog="export_onnx", description="export a deploy net to ONNX (checked with onnxruntime)")
    p.add_argument("output", nargs="?", help="the .onnx file to write (default: MODEL with .onnx)")
    p.add_flag("model", "", help="deploy prototxt (Input layers, TEST phase)")
    p.add_flag("weights", "", help=".caffemodel, .caffemodel.h5 or .pth (comma-separated list allowed)")
    p.add_flag("batch", "", help="N, or 'dynamic' for a symbolic batch axis (default: the prototxt's)")
    p.add_flag("opset", 18, int, help="ONNX opset version")
    p.add_flag("check", True, bool, help="run the file with onnxruntime and compare (--nocheck to skip)")
    a = p.parse_args(argv)
    if not a.model:
        raise UsageError("-model=<deploy.prototxt> is required")
    batch = None
    if a.batch:
        if a.batch == "dynamic":
            batch = "dynamic"
        else:
            try:
                batch = int(a.batch)
            except ValueError:
                raise UsageError(f"-batch: expected a positive integer or 'dynamic', got '{a.batch}'") from None
    from recaffe.netspec.net.export import default_output, export_onnx
    from recaffe.netspec.net.net import Net
    from recaffe.solver.netsetup import load_checked
    net = Net(a.model, phase="TEST")
    for w in [w for w in a.weights.split(",") if w]:
        load_checked(net, w)
    if not a.weights:
        print("export_onnx: no -weights: exporting the prototxt's filler values", file=sys.stderr)
    report = export_onnx(net, a.output or default_output(a.model), batch=batch, opset=a.opset, check=a.check)
    print(report.line())
    return 0


def cli(argv=None):
    """Entry point (tools/export_onnx, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "export_onnx", argv)


if __name__ == "__main__":
    cli()
