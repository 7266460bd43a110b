"""Fork fields (protos/forkschema, protos/forks.py): read strictly from prototxt under the fork's own
field numbers, decoded by the family of the layer's type, printed back, written to and read from
binary files as the fork writes them (SegNet's upsample_param is 137, BVLC's embed_param)."""
import io as pyio
import re

import pytest
from google.protobuf.unknown_fields import UnknownFieldSet

from recaffe.netspec.weights import wire
from recaffe.protos import caffe_pb2, forks, io, printer
from recaffe.protos.errors import ProtoError
from recaffe.protos.forkschema import segnet_pb2, ssd_pb2

SSD = '''layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 3 dim: 3 } } }
layer {
  name: "norm" type: "Normalize" bottom: "data" top: "norm"
  norm_param {
    across_spatial: false
    scale_filler { type: "constant" value: 20 }
    channel_shared: false
  }
}
layer {
  name: "prior" type: "PriorBox" bottom: "norm" bottom: "data" top: "prior"
  prior_box_param { min_size: 30 max_size: 60 aspect_ratio: [2, 3] variance: 0.1 variance: 0.2 step: 8 }
}
'''


def test_ssd_fields_read_strictly_under_the_forks_numbers():
    net = io.read_net(SSD)
    norm, prior = net.layer[1], net.layer[2]
    assert [u.field_number for u in UnknownFieldSet(norm)] == [206]      # SSD's norm_param
    assert [u.field_number for u in UnknownFieldSet(prior)] == [203]     # SSD's prior_box_param
    p = forks.layer_param(norm, "norm_param")
    assert (p.across_spatial, p.channel_shared, p.scale_filler.value) == (False, False, 20)
    assert p.eps == pytest.approx(1e-10)   # float32
    q = forks.layer_param(prior, "prior_box_param")
    assert list(q.min_size) == [30] and list(q.aspect_ratio) == [2, 3] and q.step == 8 and q.flip
    assert forks.has_layer_param(prior, "prior_box_param") and not forks.has_layer_param(norm, "permute_param")


def test_a_layer_without_its_fork_param_reads_the_forks_defaults():
    lp = caffe_pb2.LayerParameter(name="d", type="DetectionOutput")
    p = forks.layer_param(lp, "detection_output_param")
    assert p.share_location and p.keep_top_k == -1 and p.code_type == ssd_pb2.PriorBoxParameter.CORNER
    with pytest.raises(KeyError, match="'Convolution' has no fork parameter 'norm_param'"):
        forks.layer_param(caffe_pb2.LayerParameter(type="Convolution"), "norm_param")


@pytest.mark.parametrize("snippet, pattern", [
    ("norm_param { across_spatial: maybe }",
     r'^<string>:2:32: Expected "true" or "false" \(in fork field .norm_param. .*ssd fork'),
    ("norm_param { acros_spatial: true }", r"^<string>:2:16: .*acros_spatial.*fork field 'norm_param'"),
    ("norm_param { eps: 1 } norm_param { eps: 2 }", r"^<string>:2:25: fork field 'norm_param' given twice"),
])
def test_bad_fork_field_text_is_a_one_line_error(snippet, pattern):
    text = 'layer { name: "n" type: "Normalize"\n  %s }\n' % snippet
    with pytest.raises(ProtoError) as e:
        io.read_net(text)
    assert "\n" not in str(e.value) and re.search(pattern, str(e.value)), str(e.value)


def test_printer_writes_fork_fields_back():
    net = io.read_net(SSD)
    text = printer.message_to_text(net)
    assert re.search(r"\n  norm_param \{\n    across_spatial: false\n    scale_filler \{", text), text
    assert "aspect_ratio: 2.0\n    aspect_ratio: 3.0" in text
    assert io.read_net(text) == net


def _segnet_layer_bytes(name, upsample):
    """A LayerParameter as caffe-segnet serializes it: BVLC fields plus upsample_param under 137."""
    bvlc = caffe_pb2.LayerParameter(name=name, type="Upsample", bottom=["x", "mask"], top=["y"])
    fork = segnet_pb2.LayerParameter(upsample_param=upsample)
    return bvlc.SerializeToString() + fork.SerializeToString()


def test_segnet_upsample_param_137_does_not_become_embed_param():
    text = 'layer { name: "up" type: "Upsample" bottom: "x" bottom: "m" top: "y"\n' \
           '  upsample_param { scale: 2 upsample_h: 23 upsample_w: 30 } }\n'
    lp = io.read_net(text).layer[0]
    assert not lp.HasField("embed_param")
    assert forks.layer_param(lp, "upsample_param").upsample_w == 30
    # the .caffemodel writer puts it back under 137, where caffe-segnet reads it
    f = pyio.BytesIO()
    wire.write_caffemodel(f, "segnet", [lp], [[]])
    written = caffe_pb2.NetParameter.FromString(f.getvalue()).layer[0].SerializeToString()
    assert segnet_pb2.LayerParameter.FromString(written).upsample_param.upsample_h == 23
    assert io.read_net(f.getvalue()).layer[0] == lp


def test_binary_net_written_by_segnet_reads_with_its_upsample_param():
    layer = _segnet_layer_bytes("up", segnet_pb2.UpsampleParameter(scale=2, upsample_h=45, upsample_w=60))
    data = b"\xa2\x06" + bytes([len(layer)]) + layer          # NetParameter.layer (100), one entry
    assert caffe_pb2.NetParameter.FromString(data).layer[0].HasField("embed_param")   # BVLC's reading
    lp = io.read_net(data).layer[0]
    assert not lp.HasField("embed_param")
    p = forks.layer_param(lp, "upsample_param")
    assert (p.scale, p.upsample_h, p.upsample_w) == (2, 45, 60)
    assert "upsample_param {\n    scale: 2\n    upsample_h: 45\n    upsample_w: 60\n  }" in printer.message_to_text(
        io.read_net(data))


def test_set_layer_param_replaces():
    lp = caffe_pb2.LayerParameter(name="s", type="ShuffleChannel")
    from recaffe.protos.forkschema import shufflenet_pb2
    forks.set_layer_param(lp, "shuffle_channel_param", shufflenet_pb2.ShuffleChannelParameter(group=2))
    forks.set_layer_param(lp, "shuffle_channel_param", shufflenet_pb2.ShuffleChannelParameter(group=3))
    assert [u.field_number for u in UnknownFieldSet(lp)] == [164]
    assert forks.layer_param(lp, "shuffle_channel_param").group == 3
