"""The net and solver definitions of BVLC Caffe's examples/02-fine-tuning.ipynb, re-typed as test input.

The notebook's cells define conv_relu / fc_relu / max_pool / caffenet / style_net / solver with
`caffe_root = '../'` and NUM_STYLE_LABELS = 5, and write str(n.to_proto()) / str(s) to temp files; here the
messages are returned instead. models/caffenet.py must reproduce these texts.
"""
CAFFE_ROOT = '../'
NUM_STYLE_LABELS = 5


def build(L, P, NetSpec, to_proto, pb2):
    weight_param = dict(lr_mult=1, decay_mult=1)
    bias_param = dict(lr_mult=2, decay_mult=0)
    learned_param = [weight_param, bias_param]
    frozen_param = [dict(lr_mult=0)] * 2

    def conv_relu(bottom, ks, nout, stride=1, pad=0, group=1, param=learned_param,
                  weight_filler=dict(type='gaussian', std=0.01),
                  bias_filler=dict(type='constant', value=0.1)):
        conv = L.Convolution(bottom, kernel_size=ks, stride=stride, num_output=nout, pad=pad, group=group,
                             param=param, weight_filler=weight_filler, bias_filler=bias_filler)
        return conv, L.ReLU(conv, in_place=True)

    def fc_relu(bottom, nout, param=learned_param,
                weight_filler=dict(type='gaussian', std=0.005),
                bias_filler=dict(type='constant', value=0.1)):
        fc = L.InnerProduct(bottom, num_output=nout, param=param,
                            weight_filler=weight_filler, bias_filler=bias_filler)
        return fc, L.ReLU(fc, in_place=True)

    def max_pool(bottom, ks, stride=1):
        return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)

    def caffenet(data, label=None, train=True, num_classes=1000, classifier_name='fc8', learn_all=False):
        n = NetSpec()
        n.data = data
        param = learned_param if learn_all else frozen_param
        n.conv1, n.relu1 = conv_relu(n.data, 11, 96, stride=4, param=param)
        n.pool1 = max_pool(n.relu1, 3, stride=2)
        n.norm1 = L.LRN(n.pool1, local_size=5, alpha=1e-4, beta=0.75)
        n.conv2, n.relu2 = conv_relu(n.norm1, 5, 256, pad=2, group=2, param=param)
        n.pool2 = max_pool(n.relu2, 3, stride=2)
        n.norm2 = L.LRN(n.pool2, local_size=5, alpha=1e-4, beta=0.75)
        n.conv3, n.relu3 = conv_relu(n.norm2, 3, 384, pad=1, param=param)
        n.conv4, n.relu4 = conv_relu(n.relu3, 3, 384, pad=1, group=2, param=param)
        n.conv5, n.relu5 = conv_relu(n.relu4, 3, 256, pad=1, group=2, param=param)
        n.pool5 = max_pool(n.relu5, 3, stride=2)
        n.fc6, n.relu6 = fc_relu(n.pool5, 4096, param=param)
        if train:
            n.drop6 = fc7input = L.Dropout(n.relu6, in_place=True)
        else:
            fc7input = n.relu6
        n.fc7, n.relu7 = fc_relu(fc7input, 4096, param=param)
        if train:
            n.drop7 = fc8input = L.Dropout(n.relu7, in_place=True)
        else:
            fc8input = n.relu7
        fc8 = L.InnerProduct(fc8input, num_output=num_classes, param=learned_param)
        n.__setattr__(classifier_name, fc8)
        if not train:
            n.probs = L.Softmax(fc8)
        if label is not None:
            n.label = label
            n.loss = L.SoftmaxWithLoss(fc8, n.label)
            n.acc = L.Accuracy(fc8, n.label)
        return n.to_proto()

    def style_net(train=True, learn_all=False, subset=None):
        if subset is None:
            subset = 'train' if train else 'test'
        source = CAFFE_ROOT + 'data/flickr_style/%s.txt' % subset
        transform_param = dict(mirror=train, crop_size=227,
                               mean_file=CAFFE_ROOT + 'data/ilsvrc12/imagenet_mean.binaryproto')
        style_data, style_label = L.ImageData(transform_param=transform_param, source=source,
                                              batch_size=50, new_height=256, new_width=256, ntop=2)
        return caffenet(data=style_data, label=style_label, train=train, num_classes=NUM_STYLE_LABELS,
                        classifier_name='fc8_flickr', learn_all=learn_all)

    def solver(train_net_path, test_net_path=None, base_lr=0.001):
        s = pb2.SolverParameter()
        s.train_net = train_net_path
        if test_net_path is not None:
            s.test_net.append(test_net_path)
            s.test_interval = 1000
            s.test_iter.append(100)
        s.iter_size = 1
        s.max_iter = 100000
        s.type = 'SGD'
        s.base_lr = base_lr
        s.lr_policy = 'step'
        s.gamma = 0.1
        s.stepsize = 20000
        s.momentum = 0.9
        s.weight_decay = 5e-4
        s.display = 1000
        s.snapshot = 10000
        s.snapshot_prefix = CAFFE_ROOT + 'models/finetune_flickr_style/finetune_flickr_style'
        s.solver_mode = pb2.SolverParameter.GPU
        return s

    dummy_data = L.DummyData(shape=dict(dim=[1, 3, 227, 227]))
    return {
        'imagenet_deploy': caffenet(data=dummy_data, train=False),
        'imagenet_deploy_learn_all': caffenet(data=L.DummyData(shape=dict(dim=[1, 3, 227, 227])),
                                              train=False, learn_all=True),
        'untrained_style': style_net(train=False, subset='train'),
        'style_train': style_net(train=True),
        'style_test': style_net(train=False),
        'style_train_learn_all': style_net(train=True, learn_all=True),
        'style_test_learn_all': style_net(train=False, learn_all=True),
        'solver_train': solver('/tmp/train.prototxt'),
        'solver_train_test': solver('/tmp/train.prototxt', '/tmp/test.prototxt', base_lr=0.0001),
    }
