"""The memory behind a facade Net's blobs, and what each layer saw in the last forward.

Blobs are live numpy views of torch tensors (see recaffe.blob): the facade keeps one persistent tensor
per Input top (what ``net.blobs[<input>].data`` writes into and every forward reads); any other blob is
handed out as the net's own tensor the first time and later forwards copy their values into that same
tensor (a hook on the torch net, so solver steps count too), so arrays held across forwards stay live
and values written into them feed a ``forward(start=...)``. Diffs are one persistent tensor per blob:
Caffe's diff memory, which a script may fill by hand before ``backward``.

Forward hooks on every layer (and on each variant a reshape sets up) record, per layer index, the
bottoms it was called with and the tops it made, tagged with the forward that ran it; recaffe._backward
differentiates those. For solver-driven backward passes the hooks also keep the tensor each blob's
diff comes from (the first tensor of an in-place chain, as Caffe's shared diff memory ends up holding);
implicit Split tops are made distinct views so each branch has its own diff.
"""
import contextlib

import torch

from recaffe.netspec.net.net import AUTO_TOP, _ImplicitSplit


class BlobMemory:
    """Mixin of recaffe.net.Net: blob data/diff tensors, per-layer records, layer hooks."""

    def _init_memory(self, tnet):
        self._inputs = {n: torch.zeros(tnet.blob_shapes[n]) for n in tnet.inputs}
        self._diff_src, self._diffs, self._handed = {}, {}, {}
        self._records, self._ran, self._generation = {}, {}, 0
        self._hooked, self._replay = set(), False
        self._shaped_for = None       # (input shapes, last layer) the layers were last set up for
        self._hook_layers()
        tnet.register_forward_pre_hook(self._on_torch_forward, with_kwargs=True)
        tnet.register_forward_hook(self._sync_handed)

    # -- data --------------------------------------------------------------------------------------
    def _blob_tensor(self, name):
        """The tensor behind ``net.blobs[name].data``. The first time a blob is handed out this is the
        net's own tensor; later forwards bring their new values into that same tensor (_sync_handed), so
        an array held across forwards stays live, as Caffe's blob memory does."""
        if name in self._inputs:
            return self._inputs[name]
        blobs = self.torch_net.blobs
        if name not in blobs:
            if name not in self.torch_net.blob_shapes:
                raise KeyError(name)
            blobs[name] = torch.zeros(self.torch_net.blob_shapes[name])
        held = self._handed.get(name)
        current = blobs[name]
        if held is None or tuple(held.shape) != tuple(current.shape):
            held = self._handed[name] = current.detach()
        return held

    def _sync_handed(self, module=None, args=None, output=None):
        """After every forward of the torch net (ours or a solver's): refresh the handed-out arrays."""
        blobs = self.torch_net.blobs
        with torch.no_grad():
            for name, held in self._handed.items():
                t = blobs.get(name)
                if t is None or held.data_ptr() == t.data_ptr():
                    continue
                if tuple(held.shape) == tuple(t.shape):
                    held.copy_(t.detach())
                else:
                    self._handed[name] = t.detach()

    def _push_handed(self):
        """Before a partial forward: values written into handed-out arrays go into the net's tensors
        (through .data, so the autograd graph is kept and backward sees them, as in Caffe)."""
        blobs = self.torch_net.blobs
        for name, held in self._handed.items():
            t = blobs.get(name)
            if t is not None and held.data_ptr() != t.data_ptr() and tuple(held.shape) == tuple(t.shape):
                t.data.copy_(held)

    def _reshape_blob(self, name, shape):
        tnet = self.torch_net
        if name in self._inputs:
            if tuple(self._inputs[name].shape) != shape:
                self._inputs[name] = torch.zeros(shape)
        else:
            tnet.blobs[name] = torch.zeros(shape)
            tnet.blob_shapes[name] = shape
        self._shaped_for = None

    # -- diffs -------------------------------------------------------------------------------------
    def _blob_diff(self, name):
        """The tensor behind ``net.blobs[name].diff``: one persistent tensor per blob (zeros when the blob
        changes shape), refreshed from the gradient of a solver's backward when there was one."""
        shape = tuple(self._blob_tensor(name).shape)
        d = self._diffs.get(name)
        if d is None or tuple(d.shape) != shape:
            d = self._diffs[name] = torch.zeros(shape)
        src = self._diff_src.get(name)
        if src is not None and src.grad is not None and tuple(src.grad.shape) == shape:
            d.copy_(src.grad)
            src.grad = None
        return d

    # -- layer set-up and records ------------------------------------------------------------------
    def _shape_layers(self, i0, i1):
        """Set up layers i0..i1 for the current input shapes (Caffe reshapes the layers a forward runs,
        no others); skipped when a previous call already covered them for these shapes."""
        tnet = self.torch_net
        sig = tuple((n, tuple(t.shape)) for n, t in self._inputs.items())
        done = self._shaped_for
        if done is not None and done[0] == sig and done[1] <= i0 and i1 <= done[2]:
            return
        tnet.reshape_layers(dict(sig), start=tnet.layer_names[i0], end=tnet.layer_names[i1])
        self._hook_layers()
        if done is not None and done[0] == sig and i0 <= done[2] + 1 and i1 >= done[1] - 1:
            i0, i1 = min(i0, done[1]), max(i1, done[2])
        self._shaped_for = (sig, i0, i1)

    def _hook_layers(self):
        """Hook every layer module the net may call, including the variants set up for new shapes."""
        for i, s in enumerate(self.torch_net.steps):
            for module in list(getattr(s, "variants", {}).values()) + [self.torch_net.layers[i]]:
                if id(module) not in self._hooked:
                    self._hooked.add(id(module))
                    module.register_forward_hook(self._make_hook(i))

    def _mark_run(self, i0, i1):
        self._generation += 1
        for k in range(i0, i1 + 1):
            self._ran[k] = self._generation

    def _on_torch_forward(self, module, args, kwargs):
        """A forward through the torch module's call (a solver's step): all layers in its range run."""
        tnet = self.torch_net
        start, end = kwargs.get("start"), kwargs.get("end")
        self._mark_run(tnet.layer_names.index(start) if start else 0,
                       tnet.layer_names.index(end) if end else len(tnet.layer_names) - 1)

    def _record(self, k):
        """(bottoms, tops) of layer k in the forward that last ran it, or None when the layer ran fused
        with a neighbour (no record of that run) or never ran."""
        rec = self._records.get(k)
        if rec is None or rec[2] != self._ran.get(k):
            return None
        return rec

    @contextlib.contextmanager
    def _replaying(self):
        """Layer calls made by backward: not recorded."""
        old, self._replay = self._replay, True
        try:
            yield
        finally:
            self._replay = old

    def _make_hook(self, i):
        step = self.torch_net.steps[i]

        def hook(module, args, output):
            if self._replay:
                return None
            out = list(output)
            if isinstance(module, _ImplicitSplit):   # one autograd node per branch: per-branch diffs
                out = [o.view_as(o) for o in out]
            for j, top in enumerate(step.tops):
                if top == AUTO_TOP or j >= len(out):
                    continue
                if not (j < len(step.bottoms) and step.bottoms[j] == top):
                    self._diff_src[top] = out[j]
                if out[j].requires_grad and not out[j].is_leaf:
                    out[j].retain_grad()
            self._records[i] = (tuple(args), out, self._generation)
            return out
        return hook
