"""FCN-style nets written with NetSpec and coord_map.crop, as FCN's net.py files write them (shared by
real pycaffe and recaffe: tests/oracle/make_pycaffe_goldens.py, tests/test_pycaffe_netspec.py).

build(L, P, NetSpec, coord_map) -> {name: NetParameter}; maps(L, P, NetSpec, coord_map) -> {name: callable
returning coord_map_from_to(...) or raising}.
"""


def _conv_relu(L, bottom, nout, ks=3, stride=1, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, stride=stride, num_output=nout, pad=pad,
                         param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    return conv, L.ReLU(conv, in_place=True)


def _max_pool(L, P, bottom, ks=2, stride=2):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)


def fcn8s(L, P, NetSpec, coord_map, split="train", nclass=21):
    n = NetSpec()
    n.data, n.label = L.Python(module="voc_layers", layer="SBDDSegDataLayer", ntop=2,
                               param_str=str(dict(split=split, mean=(104.00699, 116.66877, 122.67892), seed=1337)))
    n.conv1_1, n.relu1_1 = _conv_relu(L, n.data, 8, pad=100)
    n.pool1 = _max_pool(L, P, n.relu1_1)
    n.conv2_1, n.relu2_1 = _conv_relu(L, n.pool1, 8)
    n.pool2 = _max_pool(L, P, n.relu2_1)
    n.conv3_1, n.relu3_1 = _conv_relu(L, n.pool2, 16)
    n.pool3 = _max_pool(L, P, n.relu3_1)
    n.conv4_1, n.relu4_1 = _conv_relu(L, n.pool3, 16)
    n.pool4 = _max_pool(L, P, n.relu4_1)
    n.conv5_1, n.relu5_1 = _conv_relu(L, n.pool4, 16)
    n.pool5 = _max_pool(L, P, n.relu5_1)
    n.fc6, n.relu6 = _conv_relu(L, n.pool5, 32, ks=7, pad=0)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7, n.relu7 = _conv_relu(L, n.drop6, 32, ks=1, pad=0)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.score_fr = L.Convolution(n.drop7, num_output=nclass, kernel_size=1, pad=0,
                               param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.upscore2 = L.Deconvolution(n.score_fr, convolution_param=dict(num_output=nclass, kernel_size=4, stride=2,
                                                                     bias_term=False), param=[dict(lr_mult=0)])
    n.scale_pool4 = L.Scale(n.pool4, filler=dict(type="constant", value=0.01), param=[dict(lr_mult=0)])
    n.score_pool4 = L.Convolution(n.scale_pool4, num_output=nclass, kernel_size=1, pad=0,
                                  param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.score_pool4c = coord_map.crop(n.score_pool4, n.upscore2)
    n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
    n.upscore_pool4 = L.Deconvolution(n.fuse_pool4, convolution_param=dict(num_output=nclass, kernel_size=4,
                                                                           stride=2, bias_term=False),
                                      param=[dict(lr_mult=0)])
    n.score_pool3 = L.Convolution(n.pool3, num_output=nclass, kernel_size=1, pad=0,
                                  param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.score_pool3c = coord_map.crop(n.score_pool3, n.upscore_pool4)
    n.fuse_pool3 = L.Eltwise(n.upscore_pool4, n.score_pool3c, operation=P.Eltwise.SUM)
    n.upscore8 = L.Deconvolution(n.fuse_pool3, convolution_param=dict(num_output=nclass, kernel_size=16, stride=8,
                                                                      bias_term=False), param=[dict(lr_mult=0)])
    n.score = coord_map.crop(n.upscore8, n.data)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(normalize=False, ignore_label=255))
    return n.to_proto()


def fcn32s_deploy(L, P, NetSpec, coord_map):
    """FCN-32s's deploy shape: Input, dilated and strided convolutions, one 64x64 stride-32 upsampling."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 500, 500]))
    n.conv1, n.relu1 = _conv_relu(L, n.data, 8, pad=100)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool1, num_output=8, kernel_size=3, dilation=2, pad=2)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.AVE, kernel_size=3, stride=2, pad=1)
    n.conv3 = L.Convolution(n.pool2, num_output=8, kernel_size=9, stride=8, pad=0)
    n.score_fr = L.Convolution(n.conv3, num_output=5, kernel_size=1)
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(num_output=5, kernel_size=64, stride=32,
                                                                    bias_term=False))
    n.score = coord_map.crop(n.upscore, n.data)
    return n.to_proto()


def build(L, P, NetSpec, coord_map):
    return {"fcn8s_train": fcn8s(L, P, NetSpec, coord_map), "fcn8s_val": fcn8s(L, P, NetSpec, coord_map, "val", 5),
            "fcn32s_deploy": fcn32s_deploy(L, P, NetSpec, coord_map)}


def maps(L, P, NetSpec, coord_map):
    """Named coord_map_from_to / crop calls; each returns (axis, scale, shift) or raises."""
    x = L.Input(shape=dict(dim=[1, 3, 40, 40]))
    conv = L.Convolution(x, num_output=2, kernel_size=5, stride=2, pad=3)
    pool = L.Pooling(conv, kernel_size=3, stride=3, pad=1)
    relu = L.ReLU(pool)
    deconv = L.Deconvolution(relu, convolution_param=dict(num_output=2, kernel_size=7, stride=6))
    rect = L.Convolution(x, num_output=2, kernel_size=[3, 5], stride=[1, 2], pad=[0, 2], dilation=[2, 1])
    deconv_rect = L.Deconvolution(rect, convolution_param=dict(num_output=2, kernel_size=[3, 4], stride=[1, 2]))
    crop = L.Crop(deconv, x, crop_param=dict(axis=2, offset=[3, 4]))
    fc = L.InnerProduct(conv, num_output=3)
    other = L.Input(shape=dict(dim=[1, 3, 40, 40]))
    crop_axis3 = L.Crop(L.Convolution(x, num_output=2, kernel_size=3), x, crop_param=dict(axis=3, offset=1))
    legacy_with_size = L.Convolution(x, num_output=2, kernel_size=3, stride_h=2, stride_w=2)
    legacy = L.Convolution(x, num_output=2, kernel_h=3, kernel_w=3)
    cm = coord_map
    return {
        "conv_from_data": lambda: cm.coord_map_from_to(conv, x),
        "data_from_conv": lambda: cm.coord_map_from_to(x, conv),
        "pool_from_data": lambda: cm.coord_map_from_to(pool, x),
        "relu_from_conv": lambda: cm.coord_map_from_to(relu, conv),
        "deconv_from_data": lambda: cm.coord_map_from_to(deconv, x),
        "deconv_from_conv": lambda: cm.coord_map_from_to(deconv, conv),
        "rect_from_data": lambda: cm.coord_map_from_to(rect, x),
        "deconv_rect_from_data": lambda: cm.coord_map_from_to(deconv_rect, x),
        "crop_from_data": lambda: cm.coord_map_from_to(crop, x),
        "siblings": lambda: cm.coord_map_from_to(pool, deconv),
        "same_top": lambda: cm.coord_map_from_to(conv, conv),
        "crop_deconv_to_data": lambda: cm.crop(deconv, x),
        "crop_scale_mismatch": lambda: cm.crop(conv, x),
        "crop_negative_offset": lambda: cm.crop(x, deconv),
        "crop_noninteger": lambda: cm.crop(L.Deconvolution(x, convolution_param=dict(num_output=1, kernel_size=2)), x),
        "unconnected": lambda: cm.coord_map_from_to(conv, other),
        "through_innerproduct": lambda: cm.coord_map_from_to(fc, x),
        "axis_mismatch": lambda: cm.coord_map_from_to(crop_axis3, x),
        "legacy_hw": lambda: cm.coord_map_from_to(legacy, x),
        "legacy_hw_with_kernel_size": lambda: cm.coord_map_from_to(legacy_with_size, x),
        "compose_axes": lambda: cm.compose((None, 2, 1), (3, 0.5, 4)),
        "inverse": lambda: cm.inverse((2, 4.0, -6.0)),
        "pass_through": lambda: sorted(cm.PASS_THROUGH_LAYERS),
    }
