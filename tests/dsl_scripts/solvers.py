"""Solver definitions as keyword fields: the oracle prints pb2.SolverParameter(**fields); recaffe's
netspec.spec.solver(**fields) must print the same text."""

SOLVERS = {
    'lenet': dict(net='examples/mnist/lenet_train_test.prototxt', test_iter=[100], test_interval=500,
                  base_lr=0.01, momentum=0.9, weight_decay=0.0005, lr_policy='inv', gamma=0.0001, power=0.75,
                  display=100, max_iter=10000, snapshot=5000, snapshot_prefix='examples/mnist/lenet',
                  solver_mode='CPU'),
    'multistep': dict(train_net='train.prototxt', test_net=['val_a.prototxt', 'val_b.prototxt'],
                      test_iter=[10, 20], test_interval=100, test_initialization=False, base_lr=0.1,
                      lr_policy='multistep', gamma=0.5, stepvalue=[1000, 2000, 3000], momentum=0.9,
                      iter_size=4, clip_gradients=35.0, average_loss=20, regularization_type='L1',
                      snapshot_format='BINARYPROTO', snapshot_after_train=False, random_seed=1701,
                      debug_info=True, type='Nesterov', solver_mode='GPU', device_id=0),
    'adam': dict(net='n.prototxt', base_lr=0.001, momentum=0.9, momentum2=0.999, delta=1e-8,
                 lr_policy='fixed', type='Adam', max_iter=3, display=1, weight_decay=0.0),
    'rmsprop_states': dict(net='n.prototxt', base_lr=1e-2, rms_decay=0.98, type='RMSProp', lr_policy='poly',
                           power=1.5, max_iter=50, solver_type='RMSPROP',
                           train_state=dict(stage=['train', 'big'], level=2),
                           test_state=[dict(stage=['val']), dict(phase='TEST', level=1)], test_iter=[1, 1]),
}


def build(L, P, NetSpec, to_proto, pb2):
    out = {name: pb2.SolverParameter(**fields) for name, fields in SOLVERS.items()}
    # A solver holding its net inline.
    n = NetSpec()
    n.x = L.Input(shape=dict(dim=[1, 3]))
    n.y = L.InnerProduct(n.x, num_output=2)
    s = pb2.SolverParameter(base_lr=0.5, max_iter=2, lr_policy='step', stepsize=1, gamma=0.3)
    s.net_param.CopyFrom(n.to_proto())
    out['inline_net'] = s
    return out
