"""Net diagrams (pycaffe's ``caffe.draw``, python/caffe/draw.py) without pydot: we write Graphviz DOT
text ourselves and call the ``dot`` program only to render PNG/SVG/PDF.

pycaffe's label helpers (get_layer_label, get_edge_label, get_layer_lr_mult, get_pooling_types_dict,
choose_color_by_layertype) and style dicts are here with pycaffe's results; get_pydot_graph, which hands
out a pydot object, is refused with a pointer to ``to_dot`` (the same graph as DOT text)."""
import os
import shutil
import subprocess
import tempfile

from recaffe.protos.errors import RecaffeError

LAYER_STYLE = {"shape": "record", "style": "filled", "fillcolor": "#6495ED"}
BLOB_STYLE = {"shape": "octagon", "style": "filled", "fillcolor": "#E0E0E0"}
NEURON_STYLE = {"shape": "record", "style": "filled", "fillcolor": "#90EE90"}
LAYER_STYLE_DEFAULT, NEURON_LAYER_STYLE = dict(LAYER_STYLE), dict(NEURON_STYLE)   # pycaffe's names

_LR_LAYERS = ("Convolution", "Deconvolution", "InnerProduct")


def get_pooling_types_dict():
    """{number: name} of PoolingParameter.PoolMethod ({0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'})."""
    from recaffe.protos import caffe_pb2
    return {v.number: v.name for v in caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values}


def get_edge_label(layer):
    """The label of a layer's output edges: 'Batch N' for Data, num_output for convolutions and inner
    products, '""' (an empty DOT label) otherwise."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weight lr_mult, bias lr_mult) of a Convolution/Deconvolution/InnerProduct LayerParameter; an
    unset ParamSpec counts 1.0. Other types, or more than two ParamSpecs, raise ValueError."""
    if layer.type not in _LR_LAYERS:
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier (only "
                         f"{', '.join(_LR_LAYERS)})")
    mults = [p.lr_mult for p in layer.param]
    if len(mults) > 2:
        raise ValueError(f"layer '{layer.name}': could not parse the learning rate multiplier ({len(mults)} "
                         "param specs, at most 2)")
    return tuple(mults + [1.0] * (2 - len(mults)))


def get_layer_label(layer, rankdir, display_lrm=False):
    """pycaffe's quoted node label: name, (type [pool method]), kernel/stride/pad for spatial layers and,
    with ``display_lrm``, the lr multipliers; words separated by ' ' for TB/BT layouts, by '\\n' else."""
    sep = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        parts.append(f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})")
    else:
        parts.append(f"({layer.type})")
    if layer.type == "Pooling":
        p = layer.pooling_param
        k, st, pad = p.kernel_size, p.stride, p.pad
    elif layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        k = p.kernel_size[0] if len(p.kernel_size) else 1
        st = p.stride[0] if len(p.stride) else 1
        pad = p.pad[0] if len(p.pad) else 0
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        parts.append(sep.join([f"kernel size: {k}", f"stride: {st}", f"pad: {pad}"]))
    if display_lrm and layer.type in _LR_LAYERS:
        w, b = get_layer_lr_mult(layer)
        if w or b:
            parts.append(f"lr mult: {w:.1f}, {b:.1f}")
    return '"' + sep.join(parts) + '"'


def choose_color_by_layertype(layertype):
    """Node colour by layer type, as pycaffe picks it."""
    return _color(layertype)


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """Refused: recaffe draws without pydot. ``to_dot(caffe_net, rankdir, label_edges, phase, display_lrm)``
    gives the graph as DOT text (``pydot.graph_from_dot_data`` turns that into a pydot graph)."""
    from ._refused import refuse
    refuse("caffe.draw.get_pydot_graph")


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
