"""Every legacy net/solver form Caffe 1.0 upgrades, in one place (src/caffe/util/upgrade_proto.cpp).

``upgrade_net`` applies, in Caffe's order (UpgradeNetAsNeeded):
  1. V0 -> V1: ``layers { layer { type: "conv" ... } }``; "padding" layers folded into their consumer
     (UpgradeV0PaddingLayers), flat V0 fields moved into the typed params (UpgradeV0LayerParameter);
  2. data-transformation fields of V1 DATA/IMAGE_DATA/WINDOW_DATA params -> transform_param
     (UpgradeNetDataTransformation);
  3. V1 -> V2: ``layers { type: CONVOLUTION blobs_lr: 1 }`` -> ``layer { type: "Convolution"
     param { lr_mult: 1 } }`` (UpgradeV1Net, UpgradeV1LayerParameter, UpgradeV1LayerType);
  4. ``input`` + ``input_dim``/``input_shape`` -> a leading Input layer named "input" (UpgradeNetInput);
  5. BatchNorm layers with 3 ParamSpecs get lr_mult 0 and decay_mult 0 (UpgradeNetBatchNorm).
Where Caffe logs an error and continues ("not fully compatible") we warn (ProtoWarning) and continue;
where Caffe aborts (LOG(FATAL)/CHECK) we raise ProtoError.
``upgrade_solver``: ``solver_type: ADAM`` -> ``type: "Adam"`` (UpgradeSolverType).
"""
import warnings

from . import caffe_pb2
from .errors import ProtoError
from .forks import ProtoWarning

V1 = caffe_pb2.V1LayerParameter

#: V0 type string -> V1 enum (UpgradeV0LayerType)
V0_TYPES = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS, "flatten": V1.FLATTEN,
    "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT, "im2col": V1.IM2COL,
    "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS, "innerproduct": V1.INNER_PRODUCT,
    "lrn": V1.LRN, "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX, "softmax_loss": V1.SOFTMAX_LOSS,
    "split": V1.SPLIT, "tanh": V1.TANH, "window_data": V1.WINDOW_DATA,
}

#: V1 enum name -> V2 type string (UpgradeV1LayerType)
V1_TYPES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

#: V0 field -> {V0 type: (V1 typed param, field)}; "*" = any type (UpgradeV0LayerParameter)
_CONV_IP = lambda f: {"conv": ("convolution_param", f), "innerproduct": ("inner_product_param", f)}  # noqa: E731
_CONV_POOL = lambda f: {"conv": ("convolution_param", f), "pool": ("pooling_param", f)}  # noqa: E731
_V0_FIELDS = {
    "num_output": _CONV_IP("num_output"), "biasterm": _CONV_IP("bias_term"),
    "weight_filler": _CONV_IP("weight_filler"), "bias_filler": _CONV_IP("bias_filler"),
    "pad": _CONV_POOL("pad"), "kernelsize": _CONV_POOL("kernel_size"), "stride": _CONV_POOL("stride"),
    "group": {"conv": ("convolution_param", "group")}, "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")}, "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")}, "k": {"lrn": ("lrn_param", "k")},
    "source": {"data": ("data_param", "source"), "hdf5_data": ("hdf5_data_param", "source"),
               "images": ("image_data_param", "source"), "window_data": ("window_data_param", "source"),
               "infogain_loss": ("infogain_loss_param", "source")},
    "scale": {"*": ("transform_param", "scale")}, "meanfile": {"*": ("transform_param", "mean_file")},
    "batchsize": {"data": ("data_param", "batch_size"), "hdf5_data": ("hdf5_data_param", "batch_size"),
                  "images": ("image_data_param", "batch_size"),
                  "window_data": ("window_data_param", "batch_size")},
    "cropsize": {"*": ("transform_param", "crop_size")}, "mirror": {"*": ("transform_param", "mirror")},
    "rand_skip": {"data": ("data_param", "rand_skip"), "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", None)},
}
_SOLVER_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp",
                 "ADADELTA": "AdaDelta", "ADAM": "Adam"}


def _warn(path, msg):
    warnings.warn(f"{path}: {msg}", ProtoWarning, stacklevel=4)


def needs_upgrade(net):
    """NetNeedsUpgrade of Caffe 1.0: any of the five upgrades below applies."""
    return bool(len(net.layers) or len(net.input) or _needs_batchnorm(net))


def _needs_batchnorm(net):
    return any(lp.type == "BatchNorm" and len(lp.param) == 3 for lp in net.layer)


def _fold_padding(net, path):
    """UpgradeV0PaddingLayers: drop "padding" layers, moving their pad into the consuming conv/pool."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    last_top = {name: -1 for name in net.input}
    for i, conn in enumerate(net.layers):
        if conn.layer.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in last_top:
                raise ProtoError(f"{path}: V0 layer '{conn.layer.name}' reads unknown blob '{blob}'; "
                                 "expected a net input or an earlier layer's top")
            src = last_top[blob]
            if src == -1 or net.layers[src].layer.type != "padding":
                continue
            pad = net.layers[src]
            if conn.layer.type not in ("conv", "pool") or len(conn.bottom) != 1 or \
                    len(pad.bottom) != 1 or len(pad.top) != 1:
                raise ProtoError(f"{path}: V0 padding layer '{pad.layer.name}' feeds layer "
                                 f"'{conn.layer.name}' of type '{conn.layer.type}'; expected one conv or "
                                 "pool layer with a single bottom")
            out.layers[-1].layer.pad = pad.layer.pad
            out.layers[-1].bottom[j] = pad.bottom[0]
        for blob in conn.top:
            last_top[blob] = i
    return out


def _v0_layer(conn, path):
    """UpgradeV0LayerParameter: one V0 layer connection -> a V1 layer."""
    v1 = caffe_pb2.V1LayerParameter()
    v1.bottom.extend(conn.bottom)
    v1.top.extend(conn.top)
    if not conn.HasField("layer"):
        return v1
    v0 = conn.layer
    if v0.HasField("name"):
        v1.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_TYPES:
            raise ProtoError(f"{path}: V0 layer '{v0.name}' has unknown type '{v0.type}'; expected one of "
                             + ", ".join(sorted(V0_TYPES)))
        v1.type = V0_TYPES[v0.type]
    v1.blobs.extend(v0.blobs)
    v1.blobs_lr.extend(v0.blobs_lr)
    v1.weight_decay.extend(v0.weight_decay)
    for fd, value in v0.ListFields():
        rule = _V0_FIELDS.get(fd.name)
        if rule is None:
            continue
        target = rule.get(v0.type) or rule.get("*")
        if target is None:
            _warn(path, f"V0 layer '{v0.name}': parameter '{fd.name}' is unknown for layer type "
                        f"'{v0.type}'; ignored (as Caffe does)")
            continue
        msg = getattr(v1, target[0])
        if target[1] is None:
            msg.CopyFrom(value)
            continue
        tfd = msg.DESCRIPTOR.fields_by_name[target[1]]
        if tfd.message_type is not None:
            getattr(msg, target[1]).CopyFrom(value)
        elif tfd.is_repeated:
            getattr(msg, target[1]).append(value)
        else:
            setattr(msg, target[1], value)
    return v1


def _v0_to_v1(net, path):
    """UpgradeV0Net: only name, layers, input, input_dim and force_backward survive."""
    padded = _fold_padding(net, path)
    out = caffe_pb2.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for conn in padded.layers:
        out.layers.add().CopyFrom(_v0_layer(conn, path))
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


_DATA_PARAMS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def _upgrade_data_transform(net):
    """NetNeedsDataUpgrade / UpgradeNetDataTransformation (touches every data layer, marking its typed
    and transform params present, as Caffe's mutable_*() calls do)."""
    if not any(lp.type in _DATA_PARAMS and any(getattr(lp, _DATA_PARAMS[lp.type]).HasField(f)
                                               for f in _TRANSFORM_FIELDS) for lp in net.layers):
        return
    for lp in net.layers:
        if lp.type not in _DATA_PARAMS:
            continue
        src = getattr(lp, _DATA_PARAMS[lp.type])
        src.SetInParent()
        lp.transform_param.SetInParent()
        for f in _TRANSFORM_FIELDS:
            if src.HasField(f):
                setattr(lp.transform_param, f, getattr(src, f))
                src.ClearField(f)


def _v1_layer(v1, i, path):
    """UpgradeV1LayerParameter."""
    lp = caffe_pb2.LayerParameter()
    lp.bottom.extend(v1.bottom)
    lp.top.extend(v1.top)
    if v1.HasField("name"):
        lp.name = v1.name
    lp.include.extend(v1.include)
    lp.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        lp.type = V1_TYPES[V1.LayerType.Name(v1.type)]
    lp.blobs.extend(v1.blobs)
    per_blob = (("param", "name"), ("blob_share_mode", "share_mode"), ("blobs_lr", "lr_mult"),
                ("weight_decay", "decay_mult"))
    for v1_field, spec_field in per_blob:
        for k, value in enumerate(getattr(v1, v1_field)):
            while len(lp.param) <= k:
                lp.param.add()
            setattr(lp.param[k], spec_field, value)
    lp.loss_weight.extend(v1.loss_weight)
    for fd, value in v1.ListFields():
        if fd.name.endswith("_param"):
            getattr(lp, fd.name).CopyFrom(value)
    if v1.HasField("layer"):
        _warn(path, f"V1 layer {i} ('{v1.name}') still holds a V0 'layer'; ignored (as Caffe does)")
    return lp


def _v1_to_v2(net, path):
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    if len(net.layer):
        raise ProtoError(f"{path}: net has both V1 'layers' and V2 'layer' entries (Caffe refuses to upgrade "
                         "it); expected only 'layer { type: \"...\" }' entries")
    del out.layers[:]
    del out.layer[:]
    for i, v1 in enumerate(net.layers):
        out.layer.add().CopyFrom(_v1_layer(v1, i, path))
    return out


def _upgrade_input(net, path):
    """UpgradeNetInput: input names with shapes/dims become a leading Input layer named "input"."""
    n = len(net.input)
    if len(net.input_shape) or len(net.input_dim):
        if len(net.input_shape) and len(net.input_shape) < n or \
                not len(net.input_shape) and len(net.input_dim) < 4 * n:
            raise ProtoError(f"{path}: {n} net inputs need {n} input_shape or {4 * n} input_dim entries; "
                             f"got {len(net.input_shape)} input_shape and {len(net.input_dim)} input_dim")
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if len(net.input_shape):
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        layers = [layer] + list(net.layer)
        del net.layer[:]
        net.layer.extend(layers)
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


def upgrade_net(net, path="<net>"):
    """A V2 copy of ``net`` (a NetParameter in any Caffe format); ``net`` itself is not changed."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    if any(conn.HasField("layer") for conn in out.layers):
        out = _v0_to_v1(out, path)
    _upgrade_data_transform(out)
    if len(out.layers):
        out = _v1_to_v2(out, path)
    if len(out.input):
        _upgrade_input(out, path)
    for lp in out.layer:
        if lp.type == "BatchNorm" and len(lp.param) == 3:
            for spec in lp.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
    return out


def upgrade_solver(solver, path="<solver>"):
    """UpgradeSolverAsNeeded on a copy: the ``solver_type`` enum becomes the ``type`` string."""
    out = caffe_pb2.SolverParameter()
    out.CopyFrom(solver)
    if out.HasField("solver_type"):
        if out.HasField("type"):
            raise ProtoError(f"{path}: both 'solver_type' (old enum) and 'type' (string) are set; "
                             "keep only 'type'")
        out.type = _SOLVER_TYPES[caffe_pb2.SolverParameter.SolverType.Name(out.solver_type)]
        out.ClearField("solver_type")
    return out
