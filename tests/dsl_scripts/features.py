"""DSL features one by one: automatic names, ntop, in_place, shared params, enums, phases, sub-messages,
repeated fields, loss_weight, name/top overrides, anonymous graphs, float and string spellings."""


def build(L, P, NetSpec, to_proto, pb2):
    out = {}

    # Anonymous graph through to_proto(*tops): per-type counters, an unnamed multi-top layer, in-place
    # layers named after their own (automatic) top, two tops given at once.
    data, label = L.DummyData(shape=[dict(dim=[2, 3, 8, 8]), dict(dim=[2])], ntop=2)
    c1 = L.Convolution(data, kernel_size=3, num_output=4, pad=1)
    r1 = L.ReLU(c1, in_place=True)
    c2 = L.Convolution(r1, kernel_size=[3, 1], num_output=4, pad=[1, 0])
    s1, s2, s3 = L.Slice(c2, slice_param=dict(axis=1, slice_point=[1, 2]), ntop=3)
    cat = L.Concat(s3, s1)
    ip = L.InnerProduct(cat, num_output=5)
    loss = L.SoftmaxWithLoss(ip, label)
    sig = L.Sigmoid(s2)
    out['anonymous'] = to_proto(loss, sig)
    out['top_to_proto'] = L.Pooling(L.Convolution(L.Input(shape=dict(dim=[1, 1, 5, 5])), kernel_size=2,
                                                  num_output=1), pool=P.Pooling.AVE, kernel_size=2).to_proto()

    # Named NetSpec: in-place chains, shared parameter names, enums, include/exclude, loss weights.
    n = NetSpec()
    n.data, n.label = L.Data(source='train_lmdb', backend=P.Data.LMDB, batch_size=32, ntop=2,
                             transform_param=dict(crop_size=7, mirror=True, mean_value=[104, 117, 123],
                                                  scale=0.00390625),
                             include=dict(phase=pb2.TRAIN))
    shared = [dict(name='w_shared', lr_mult=1, decay_mult=1), dict(name='b_shared', lr_mult=2, decay_mult=0)]
    n.conv_a = L.Convolution(n.data, num_output=6, kernel_size=3, stride=2, param=shared,
                             weight_filler=dict(type='msra', variance_norm=P.Filler.FAN_OUT),
                             bias_filler=dict(type='constant', value=0.2))
    n.conv_b = L.Convolution(n.data, num_output=6, kernel_size=3, stride=2, param=shared)
    n.bn_a = L.BatchNorm(n.conv_a, in_place=True, use_global_stats=False,
                         param=[dict(lr_mult=0), dict(lr_mult=0), dict(lr_mult=0)])
    n.scale_a = L.Scale(n.conv_a, in_place=True, bias_term=True)
    n.prelu_b = L.PReLU(n.conv_b, in_place=True, channel_shared=True)
    n.sum = L.Eltwise(n.conv_a, n.conv_b, operation=P.Eltwise.SUM, coeff=[0.5, -1.5])
    n.prod = L.Eltwise(n.conv_a, n.sum, operation=P.Eltwise.PROD)
    n.pool = L.Pooling(n.prod, pool=P.Pooling.STOCHASTIC, kernel_h=2, kernel_w=3, pad_h=1, stride=1)
    n.gpool = L.Pooling(n.pool, pool=P.Pooling.MAX, global_pooling=True)
    n.norm = L.LRN(n.pool, local_size=3, alpha=5e-05, beta=0.75, norm_region=P.LRN.WITHIN_CHANNEL)
    n.drop = L.Dropout(n.norm, dropout_ratio=0.3, in_place=True)
    n.flat = L.Flatten(n.drop)
    n.resh = L.Reshape(n.flat, shape=dict(dim=[0, -1, 1, 1]))
    n.fc = L.InnerProduct(n.resh, num_output=3, bias_term=False, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.fc, n.label, loss_weight=0.7,
                               loss_param=dict(ignore_label=255, normalization=P.Loss.VALID))
    n.hinge = L.HingeLoss(n.fc, n.label, hinge_loss_param=dict(norm=P.HingeLoss.L2), loss_weight=[1])
    n.acc = L.Accuracy(n.fc, n.label, top_k=2, include=[dict(phase=pb2.TEST, stage=['val'])],
                       exclude=dict(not_stage='deploy'))
    n.argmax = L.ArgMax(n.fc, out_max_val=True, propagate_down=[False])
    n.silence = L.Silence(n.argmax, ntop=0)
    out['named'] = n.to_proto()

    # Overrides and naming corner cases: name= kwarg, extra top=, one Top under two names (last wins),
    # a Top used by a later layer before it is named, Deconvolution through convolution_param, a Python
    # layer, an empty sub-message dict, an empty ParamSpec.
    m = NetSpec()
    m.input = L.Input(shape=dict(dim=[1, 2, 4, 4]))
    unnamed = L.Sigmoid(m.input)
    m.up = L.Deconvolution(unnamed, convolution_param=dict(num_output=2, kernel_size=4, stride=2, group=2,
                                                            bias_term=False, weight_filler=dict(type='bilinear')),
                           param=[dict(lr_mult=0)])
    m.py = L.Python(m.up, module='my_layers', layer='MyLayer', param_str="{'k': 3, \"s\": 'x'}",
                    name='python_layer')
    m.first_name = m.py
    m.second_name = m.py
    m.crop = L.Crop(m.up, m.input, axis=2, offset=[1, 1])
    m.th = L.Threshold(m.crop, threshold=0.5, top=['extra_top'])
    m.tanh = L.TanH(m.th, convolution_param=dict())
    m.power = L.Power(m.tanh, power=2, scale=0.1, shift=-1e-3, param=[dict()])
    m.emb = L.Embed(m.power, num_output=7, input_dim=11)
    out['overrides'] = m.to_proto()

    # Float and string spellings.
    f = NetSpec()
    f.data = L.Input(shape=dict(dim=[1, 1, 2, 2]))
    f.fl = L.DummyData(dummy_data_param=dict(
        shape=[dict(dim=[1])],
        data_filler=[dict(type='uniform', min=-1e-20, max=1e20),
                     dict(type='gaussian', mean=0.1, std=1. / 3, sparse=2),
                     dict(type='constant', value=123456789.0),
                     dict(type='constant', value=3e-42),
                     dict(type='constant', value=float('inf')),
                     dict(type='constant', value=-0.0)]))
    f.strs = L.ImageData(f.data, source='data/caf\u00e9 "list".txt', root_folder='a\\b\tc\n', shuffle=True,
                         transform_param=dict(mean_file='m\u00e9an.binaryproto', scale=0.017, force_color=True))
    out['spellings'] = f.to_proto()

    # Net-level fields through the protobuf message itself.
    net = n.to_proto()
    net.name = 'NamedNet'
    net.force_backward = True
    out['net_fields'] = net
    return out
