"""Misuse of the DSL: the oracle records the exception pycaffe raises for each case; recaffe must raise
NetError (with a message naming the layer type and what is valid) for every case pycaffe rejects."""


def cases(L, P, NetSpec, to_proto, pb2):
    def net(make):
        def run():
            n = NetSpec()
            n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
            n.out = make(n.data)
            return n.to_proto()
        return run

    return {
        'unknown_param': net(lambda x: L.Convolution(x, num_output=2, kernel_sz=3)),
        'typo_in_filler': net(lambda x: L.Convolution(x, num_output=2, kernel_size=3,
                                                       weight_filler=dict(tpye='xavier'))),
        'deconv_flat_kwarg': net(lambda x: L.Deconvolution(x, num_output=2, kernel_size=2)),
        'loss_flat_kwarg': net(lambda x: L.SoftmaxWithLoss(x, x, ignore_label=255)),
        'bad_enum_value': net(lambda x: L.Pooling(x, pool=7, kernel_size=2)),
        'float_for_int': net(lambda x: L.Pooling(x, pool=P.Pooling.MAX, kernel_size=2.5)),
        'int_for_string': net(lambda x: L.Convolution(x, num_output=2, kernel_size=3, weight_filler=dict(type=3))),
        'scalar_for_message': net(lambda x: L.Convolution(x, num_output=2, kernel_size=3, weight_filler='xavier')),
        'not_a_top': net(lambda x: L.ReLU(3)),
        'unknown_layer_field': net(lambda x: L.Silence(x, ntop=0, bogus=1)),
        'accuracy_ok': net(lambda x: L.Accuracy(x, x, ignore_label=3)),
        'custom_type_ok': net(lambda x: L.MyCustomLayer(x, loss_weight=2)),
    }
