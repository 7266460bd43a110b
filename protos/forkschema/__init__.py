"""The fork schemas: for each Caffe fork whose layers recaffe runs, the fields that fork adds to
Caffe's messages, under the fork's own field numbers (<family>.proto, compiled to <family>_pb2.py by
regen.py).

A family's message named like a BVLC message (``LayerParameter``, ``TransformationParameter``) holds
only the fields the fork adds to it. ``FAMILIES`` maps each family to its module and the layer types
whose parameters it describes: a fork field of a layer is read with the schema of the family of the
layer's type, because forks reuse numbers (PSPNet's seg_accuracy_param and ShuffleNet's
shuffle_channel_param are both 164).
"""
from . import frcnn_pb2, pspnet_pb2, segnet_pb2, shufflenet_pb2, ssd_pb2

#: family -> (module, layer types it serves)
FAMILIES = {
    "ssd": (ssd_pb2, ("Normalize", "Permute", "PriorBox", "DetectionOutput", "AnnotatedData",
                      "MultiBoxLoss", "DetectionEvaluate")),
    "frcnn": (frcnn_pb2, ("ROIPooling", "SmoothL1Loss")),
    "shufflenet": (shufflenet_pb2, ("ShuffleChannel",)),
    "segnet": (segnet_pb2, ("BN", "Upsample", "DenseImageData")),
    "pspnet": (pspnet_pb2, ("Interp",)),
}
