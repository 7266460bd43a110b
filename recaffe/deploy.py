"""A deploy net from a train_val net (beyond Caffe, which has users hand-edit deploy.prototxt).

Rules, applied to the NetParameter (V2) in file order:
  * data layers (Data, ImageData, HDF5Data, MemoryData, WindowData, DummyData, Input, Python layers
    with no bottoms) go; an Input layer feeding their first top takes their place, shape
    (batch, channels, height, width): from ``shape`` when given, else batch from the flag or 1,
    channels from ``is_color``/``force_gray`` (3 or 1), height/width from ``crop_size``, else ImageData's
    new_height/new_width, MemoryData's channels/height/width, DummyData's shape;
  * layers that only run in TRAIN (include phase TRAIN, or exclude phase TEST) go; phase rules of the
    layers that stay are dropped (the deploy net has no phases);
  * loss layers (any type ending in "Loss"), Accuracy, and Silence go, as does every layer that needs
    a blob no remaining layer produces (e.g. the label);
  * a Softmax named ``prob`` is added on the first bottom of the (first) SoftmaxWithLoss, unless that
    blob already feeds a Softmax or ``add_prob`` is False.
Layer names are kept, so the trained .caffemodel loads into the result by name.
"""
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from recaffe.protos.io import read_net

DATA_TYPES = {"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData", "Input"}
DROP_TYPES = {"Accuracy", "Silence"}
_TRAIN, _TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _train_only(lp):
    inc = [r for r in lp.include if r.HasField("phase")]
    if inc and all(r.phase == _TRAIN for r in inc):
        return True
    return any(r.HasField("phase") and r.phase == _TEST for r in lp.exclude)


def _is_data(lp):
    return lp.type in DATA_TYPES or (lp.type == "Python" and not lp.bottom)


def _data_shape(lp, batch):
    """(N, C, H, W) of a data layer's first top, or None when its parameters do not say."""
    tp = lp.transform_param
    channels = 1 if tp.force_gray else 3
    if lp.type == "ImageData" and not lp.image_data_param.is_color:
        channels = 1
    if lp.type == "MemoryData":
        p = lp.memory_data_param
        return (batch or p.batch_size, p.channels, p.height, p.width)
    if lp.type == "DummyData" and len(lp.dummy_data_param.shape):
        dims = list(lp.dummy_data_param.shape[0].dim)
        return tuple([batch or dims[0]] + dims[1:])
    if lp.type == "Input" and len(lp.input_param.shape):
        dims = list(lp.input_param.shape[0].dim)
        return tuple([batch or dims[0]] + dims[1:])
    if tp.crop_size:
        return (batch or 1, channels, tp.crop_size, tp.crop_size)
    if lp.type == "ImageData" and lp.image_data_param.new_height and lp.image_data_param.new_width:
        p = lp.image_data_param
        return (batch or 1, channels, p.new_height, p.new_width)
    return None


def deploy_from_train_val(source, shape=None, batch=None, add_prob=True):
    """The deploy NetParameter for a train_val net (path, text or NetParameter); ``shape`` overrides
    the input shape (N, C, H, W), ``batch`` only its first axis."""
    param = caffe_pb2.NetParameter()
    param.CopyFrom(read_net(source))
    if len(param.layers):
        raise NetError(f"net '{param.name}': V1 'layers' entries; upgrade the file first (upgrade_net_proto_text)")
    where = f"net '{param.name or '?'}'"
    data = [lp for lp in param.layer if _is_data(lp) and not _train_only(lp)] or \
           [lp for lp in param.layer if _is_data(lp)]
    if not data and not (len(param.input) or any(l.type == "Input" for l in param.layer)):
        raise NetError(f"{where}: no data layer found (types {', '.join(sorted(DATA_TYPES))})")
    out = caffe_pb2.NetParameter()
    if param.name:
        out.name = param.name
    if data:
        src = data[0]
        if not src.top:
            raise NetError(f"{where}: data layer '{src.name}' has no top")
        in_shape = tuple(shape) if shape else _data_shape(src, batch)
        if in_shape is None:
            raise NetError(f"{where}: cannot tell the input shape from data layer '{src.name}' ({src.type}): "
                           "no crop_size or size fields; give it (--shape N,C,H,W)")
        inp = out.layer.add(name=src.top[0], type="Input")
        inp.top.append(src.top[0])
        inp.input_param.shape.add().dim.extend(int(d) for d in in_shape)
    available = set(out.layer[0].top) if data else set(param.input)
    if not data:
        out.input.extend(param.input)
        out.input_shape.extend(param.input_shape)
        out.input_dim.extend(param.input_dim)
    loss_bottom = None
    for lp in param.layer:
        if _is_data(lp) or _train_only(lp):
            continue
        if lp.type.endswith("Loss") or lp.type in DROP_TYPES:
            if lp.type == "SoftmaxWithLoss" and loss_bottom is None and lp.bottom:
                loss_bottom = lp.bottom[0]
            continue
        if any(b not in available for b in lp.bottom):
            continue
        kept = out.layer.add()
        kept.CopyFrom(lp)
        del kept.include[:]
        del kept.exclude[:]
        kept.ClearField("phase")
        del kept.loss_weight[:]
        available.update(kept.top)
    has_softmax = any(l.type == "Softmax" and list(l.bottom) == [loss_bottom] for l in out.layer)
    if add_prob and loss_bottom is not None and loss_bottom in available and not has_softmax:
        prob = out.layer.add(name="prob", type="Softmax")
        prob.bottom.append(loss_bottom)
        prob.top.append("prob")
    return out
