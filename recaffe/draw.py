"""Net diagrams (pycaffe's ``caffe.draw``, python/caffe/draw.py) without pydot: we write Graphviz DOT
text ourselves and call the ``dot`` program only to render PNG/SVG/PDF."""
import os
import shutil
import subprocess
import tempfile

from recaffe.protos.errors import RecaffeError

LAYER_STYLE = {"shape": "record", "style": "filled", "fillcolor": "#6495ED"}
BLOB_STYLE = {"shape": "octagon", "style": "filled", "fillcolor": "#E0E0E0"}
NEURON_STYLE = {"shape": "record", "style": "filled", "fillcolor": "#90EE90"}


def _color(layer_type):
    """Colour a node by its layer type, as pycaffe does (convolutions, pooling, inner products)."""
    if layer_type in ("Convolution", "Deconvolution"):
        return "#FF5050"
    if layer_type == "Pooling":
        return "#FF9900"
    if layer_type == "InnerProduct":
        return "#CC33FF"
    return "#6495ED"


def _layer_label(layer, rankdir, display_lrm=False):
    sep = "\\n" if rankdir in ("TB", "BT") else " "
    parts = [layer.name, f"({layer.type})"]
    if layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        k = p.kernel_size[0] if len(p.kernel_size) else p.kernel_h
        s = p.stride[0] if len(p.stride) else (p.stride_h or 1)
        pad = p.pad[0] if len(p.pad) else p.pad_h
        parts.append(f"kernel size: {k}{sep}stride: {s}{sep}pad: {pad}")
    elif layer.type == "Pooling":
        p = layer.pooling_param
        method = {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}[p.pool]
        parts.append(f"pool={method}{sep}kernel size: {p.kernel_size}{sep}stride: {p.stride}{sep}pad: {p.pad}")
    if display_lrm and len(layer.param):
        parts.append("lr mult: " + ", ".join(f"{ps.lr_mult:g}" for ps in layer.param))
    return sep.join(parts)


def _attrs(d):
    return ", ".join(f'{k}="{v}"' for k, v in d.items())


def _q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(net_param, rankdir="LR", label_edges=True, phase=None, display_lrm=False):
    """DOT text for a NetParameter: layers as boxes, blobs as octagons; in-place layers drawn inline.
    ``phase`` ("TRAIN"/"TEST"/None) keeps only layers whose include/exclude phase fits."""
    from recaffe.protos import caffe_pb2
    lines = [f"digraph {_q(net_param.name or 'Net')} {{", f'  graph [rankdir="{rankdir}"];']
    want = None if phase is None else caffe_pb2.Phase.Value(phase) if isinstance(phase, str) else phase
    for i, layer in enumerate(net_param.layer):
        if want is not None:
            inc = [r for r in layer.include if r.HasField("phase")]
            exc = [r for r in layer.exclude if r.HasField("phase")]
            if inc and all(r.phase != want for r in inc):
                continue
            if any(r.phase == want for r in exc):
                continue
        node = f"layer_{i}_{layer.name}"
        in_place = len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]
        style = dict(NEURON_STYLE if in_place else LAYER_STYLE)
        style["fillcolor"] = NEURON_STYLE["fillcolor"] if in_place else _color(layer.type)
        style["label"] = _layer_label(layer, rankdir, display_lrm).replace('"', "'")
        lines.append(f"  {_q(node)} [{_attrs(style)}];")
        for b in layer.bottom:
            lines.append(f"  {_q('blob_' + b)} [{_attrs(dict(BLOB_STYLE, label=b))}];")
            lines.append(f"  {_q('blob_' + b)} -> {_q(node)};")
        for t in layer.top:
            if in_place:
                continue
            lines.append(f"  {_q('blob_' + t)} [{_attrs(dict(BLOB_STYLE, label=t))}];")
            lines.append(f"  {_q(node)} -> {_q('blob_' + t)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_net(net_param, rankdir="LR", ext="png", phase=None, display_lrm=False):
    """The diagram as bytes in format ``ext`` (pycaffe's caffe.draw.draw_net); 'dot' gives the DOT text."""
    dot_text = to_dot(net_param, rankdir, phase=phase, display_lrm=display_lrm)
    if ext in ("dot", "gv"):
        return dot_text.encode()
    dot = shutil.which("dot")
    if dot is None:
        raise RecaffeError(f"cannot render .{ext}: Graphviz 'dot' is not installed (apt-get install graphviz); "
                           "use ext='dot' for the DOT text")
    r = subprocess.run([dot, "-T" + ext], input=dot_text.encode(), capture_output=True)
    if r.returncode != 0:
        raise RecaffeError(f"dot -T{ext} failed: {r.stderr.decode().strip()}")
    return r.stdout


def draw_net_to_file(net_param, filename, rankdir="LR", phase=None, display_lrm=False):
    """Write the diagram: ``.dot``/``.gv`` as text; any other extension through Graphviz ``dot``."""
    dot_text = to_dot(net_param, rankdir, phase=phase, display_lrm=display_lrm)
    ext = os.path.splitext(filename)[1].lstrip(".").lower() or "png"
    d = os.path.dirname(os.path.abspath(filename))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".draw_", suffix="." + ext)
    os.close(fd)
    try:
        if ext in ("dot", "gv"):
            with open(tmp, "w") as f:
                f.write(dot_text)
        else:
            dot = shutil.which("dot")
            if dot is None:
                raise RecaffeError(f"cannot write {filename}: Graphviz 'dot' is not installed "
                                   f"(apt-get install graphviz); write a .dot file instead")
            r = subprocess.run([dot, "-T" + ext, "-o", tmp], input=dot_text.encode(), capture_output=True)
            if r.returncode != 0:
                raise RecaffeError(f"dot failed for {filename}: {r.stderr.decode().strip()}")
        os.replace(tmp, filename)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
