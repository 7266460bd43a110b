"""The public schedule of a Net (build.Step per layer, Net::Init's bookkeeping) and its fusion plan
(fuse.FusionPlan): which steps a small train net lists, and which of them run as one fused call."""
import torch

from recaffe.netspec import Net
from recaffe.netspec.net import fuse as netfuse
from recaffe.netspec.net.build import AUTO_TOP, Step

TEXT = '''
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { use_global_stats: true } }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" propagate_down: true
        propagate_down: false loss_weight: 2 }
layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" }
'''
SPLIT_FC = "fc_fc_0_split"
SPLIT_LABEL = "label_data_1_split"


def test_schedule_lists_every_layer_with_caffes_bookkeeping():
    net = Net(TEXT, phase="TRAIN")
    assert all(isinstance(s, Step) for s in net.steps)
    assert [s.index for s in net.steps] == list(range(len(net.steps)))
    assert [(s.name, s.type) for s in net.steps] == [
        ("data", "Input"), (SPLIT_LABEL, "Split"), ("conv", "Convolution"), ("bn", "BatchNorm"),
        ("sc", "Scale"), ("relu", "ReLU"), ("fc", "InnerProduct"), (SPLIT_FC, "Split"),
        ("loss", "SoftmaxWithLoss"), ("acc", "Accuracy")]
    s = {st.name: st for st in net.steps}
    assert s["data"].source and s["data"].feeds and s["data"].tops == ["data", "label"]
    assert s[SPLIT_LABEL].tops == [SPLIT_LABEL + "_0", SPLIT_LABEL + "_1"]
    assert s["loss"].bottoms == [SPLIT_FC + "_0", SPLIT_LABEL + "_0"] and s["loss"].tops == ["loss"]
    assert s["loss"].loss == ((0, 2.0),) and s["loss"].detach == (1,)
    assert s["bn"].in_place == (0,) and s["relu"].in_place == (0,) and s["conv"].in_place == ()
    # tops that reach no loss (propagate_down: false cuts the label's path): no autograd there
    assert {st.name for st in net.steps if st.grad_free} == {"acc", SPLIT_LABEL}
    assert s["conv"].key == ((2, 3, 8, 8),) and s["data"].key is None
    assert all(st.layer is layer for st, layer in zip(net.steps, net.layers))
    assert net.blob_loss_weights == {"loss": 2.0} and AUTO_TOP not in net.blob_names


def test_fusion_plan_fuses_the_expected_steps(monkeypatch):
    net = Net(TEXT, phase="TRAIN")
    plan = net.fusion
    assert plan.bn_scale == {3}                 # bn + sc
    assert plan.chains == {2: 4, 6: 1}          # conv + bn + sc + relu; fc alone
    assert plan.inplace_relus == {5}
    ran = []
    real = netfuse.run_chain
    monkeypatch.setattr(netfuse, "run_chain", lambda net, k, x: ran.append(k) or real(net, k, x))
    x, label = torch.randn(2, 3, 8, 8), torch.tensor([0.0, 2.0])
    net(data=x, label=label)
    assert ran == []                            # learning weights: autograd, no fused inference call
    with torch.no_grad():
        fused = net(data=x, label=label)
    assert ran == [2, 6]
    net.fuse_bn_scale = False
    with torch.no_grad():
        plain = net(data=x, label=label)
    assert ran == [2, 6]
    torch.testing.assert_close(fused["loss"], plain["loss"], rtol=1e-5, atol=1e-6)
