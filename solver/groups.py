"""Param groups from a Net's ParamSpecs (src/caffe/net.cpp: Net::AppendParam; sgd_solver.cpp uses
``params_lr()`` and ``params_weight_decay()`` per learnable parameter).

Each learnable (owner) parameter blob carries its layer's ``lr_mult`` and ``decay_mult`` (V1
``blobs_lr`` / ``weight_decay`` arrive here through the net upgrade). Parameters with the same pair
form one torch param group, so ``optimizer.param_groups`` shows the multipliers directly. The
learnable order (layer x blob, owners only) is kept separately: it is the .solverstate history order.
A blob with ``lr_mult: 0`` has ``requires_grad=False`` (set by the Net), so autograd does no work for
it and a frozen prefix of the net costs no backward pass.
"""


def learnable(net):
    """[(param, lr_mult, decay_mult, layer_name, blob_index)] in Caffe's learnable-param order."""
    return list(net.learnable_params())


def param_groups(entries):
    """Group learnable entries by (lr_mult, decay_mult), in order of first appearance."""
    groups = {}
    for p, lr_mult, decay_mult, layer, bi in entries:
        key = (float(lr_mult), float(decay_mult))
        if key not in groups:
            groups[key] = {"params": [], "lr_mult": key[0], "decay_mult": key[1], "names": []}
        groups[key]["params"].append(p)
        groups[key]["names"].append(f"{layer}.{bi}")
    return list(groups.values())


def describe(entries):
    """One line per learnable blob: 'layer.i shape lr_mult decay_mult' (for logs and debugging)."""
    return [f"{layer}.{bi} {tuple(p.shape)} lr_mult={lr} decay_mult={dec}"
            for p, lr, dec, layer, bi in entries]
