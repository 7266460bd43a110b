"""Fast feeding: batches are read, decoded, cropped and mirrored (uint8) in worker threads or
processes.

``BatchMaker`` turns a batch index into the batch (its records, uint8 crops, labels and the crop /
mirror plan per sample); it is a pure function of (source, seed, batch index), so any number of
workers produces the same batches in the same order. ``Feeder`` runs it, ``prefetch`` batches in
flight, either in threads (CPU consumer: OpenCV and numpy release the GIL, and nothing is copied
between processes -- shipping a float batch through shared memory cost more than making it) or
through a ``torch.utils.data.DataLoader`` in worker processes (``batch_size=None``: one item = one
batch) with pinned memory, for a GPU consumer. The float conversion, mean and scale
(``DataTransformer.finish``) happen once per batch on the consumer's GPU (workers ship uint8, a
quarter of the bytes), or, for a CPU consumer, in the workers, straight from the crop views.
``RECAFFE_DATA_WORKERS`` sets the default worker count (0: everything in the calling thread).

Record order follows Caffe: record p of the stream is ``order[p mod n]``, continuing across the end
of the source (src/caffe/layers/base_data_layer.cpp, data_layer.cpp, image_data_layer.cpp). With
``shuffle`` the order is a fresh permutation for every pass over the source, as ImageData reshuffles
at each wrap; ``skip`` starts the stream later (ImageData's rand_skip).

Data-parallel training (recaffe.solver.distributed): a maker with ``rank``/``world`` set serves, for
local batch b, global batch ``b * world + rank`` (records, crop/mirror plan and shuffle order all
keyed by the global index), so N ranks at local batches [i*I, (i+1)*I) read exactly the global
batches [i*I*N, (i+1)*I*N) one process with iter_size I*N reads.
"""
import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from recaffe.protos.errors import DataError


def default_workers():
    env = os.environ.get("RECAFFE_DATA_WORKERS")
    if env is not None:
        return max(0, int(env))
    return min(4, os.cpu_count() or 1)


class BatchMaker(Dataset):
    """Batch b of the stream: (data, labels, plans); data uint8 crops, or finished float32 with
    plans None when ``finish_here``."""

    def __init__(self, source, transformer, batch_size, seed, shuffle=False, skip=0):
        self.source, self.tf = source, transformer
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.shuffle, self.skip = shuffle, int(skip)
        self._perm = {}
        #: apply DataTransformer.finish in the worker (CPU consumer: spreads it over the workers);
        #: otherwise the worker ships uint8 and the consumer (a GPU) finishes
        self.finish_here = False
        self.out_shape = None
        #: data-parallel sharding: local batch b is global batch b * world + rank (see the module doc)
        self.rank, self.world = 0, 1

    def __len__(self):  # the stream is endless; DataLoader never asks with our sampler
        return 1 << 62

    def indices(self, b):
        return [self.index(p) for p in range(self.skip + b * self.batch_size, self.skip + (b + 1) * self.batch_size)]

    def index(self, p):
        """The record served at stream position ``p`` (the first record of batch 0 is ``index(skip)``)."""
        epoch, k = divmod(p, len(self.source))
        return self._order(epoch)[k] if self.shuffle else k

    def _order(self, epoch):
        """The record order of pass ``epoch`` (one cached; safe to call from several threads)."""
        perm = self._perm.get((self.seed, epoch))
        if perm is None:
            perm = np.random.default_rng([self.seed, 1, epoch]).permutation(len(self.source))
            self._perm = {(self.seed, epoch): perm}
        return perm

    def __getitem__(self, b, out=None):
        """``out``: an optional float32 array to finish into (used when its shape fits)."""
        b = b * self.world + self.rank          # local -> global batch index (data parallel)
        idx = self.indices(b)
        views = getattr(self.source, "views", None)
        if views is None:
            return self._make(b, idx, self.source.load_many(idx), out)
        with views(idx) as records:   # zero-copy records: everything below copies out of them
            return self._make(b, idx, records, out)

    def new_output(self):
        """An empty float32 batch of the last finished batch's shape (None before the first): the
        thread pool allocates it in the consumer's thread, so that the big buffer comes from (and
        goes back to) the consumer's malloc arena -- allocated in a worker thread, glibc maps and
        unmaps it for every batch, costing the kernel page zeroing (measured: ~40% more CPU)."""
        return None if self.out_shape is None else np.empty(self.out_shape, np.float32)

    def _make(self, b, idx, records, out=None):
        rng = np.random.default_rng([self.seed, 2, b]) if self.tf.random else None
        shape0 = records[0][0].shape
        self.tf.check_source_shape(shape0)
        for i, (arr, _) in zip(idx, records):
            if arr.shape != shape0:
                raise DataError(f"{self.source.where(i)}: "
                                f"record has shape {arr.shape}, the first of its batch has {shape0}; "
                                f"a batch must have one size (resize when converting)")
        plans = self.tf.plans(rng, shape0, len(records))
        pieces = [self.tf.crop_mirror(arr, plan) for (arr, _), plan in zip(records, plans)]
        labels = torch.tensor([r[1] for r in records], dtype=torch.float32)
        if self.finish_here:
            data = self.tf.finish_numpy(pieces, plans, out)
            self.out_shape = data.shape
            return torch.from_numpy(data), labels, None
        data = torch.from_numpy(np.stack(pieces))
        return data, labels, plans


class _From:
    """An endless sampler: batch indices start, start + 1, ..."""

    def __init__(self, start):
        self.start = start

    def __iter__(self):
        b = self.start
        while True:
            yield b
            b += 1


class _ThreadPrefetch:
    """Batches made by a pool of threads, ``prefetch`` in flight, delivered in order. OpenCV's decoders
    and numpy's loops release the GIL, so threads decode in parallel without copying batches
    between processes (what a CPU consumer wants)."""

    def __init__(self, maker, start, workers, prefetch):
        import collections
        from concurrent.futures import ThreadPoolExecutor
        self.maker, self.next_submit = maker, start
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="recaffe-data")
        self.queue = collections.deque()
        self.buffers = []
        for _ in range(max(prefetch, workers)):
            self._submit()

    def _submit(self):
        self.queue.append(self.pool.submit(self.maker.__getitem__, self.next_submit, self._output()))
        self.next_submit += 1

    def _output(self):
        """A float32 batch buffer to finish into: one of ours that nothing else references any more
        (the tensor handed out by an earlier batch holds a reference to its array until it is
        dropped), else a new one, kept for reuse. Reusing warm buffers instead of fresh ones saves
        ~20% of the Data layer's CPU (page faults and cache misses on a 31 MB batch)."""
        shape = self.maker.out_shape
        if shape is None:
            return None
        for a in self.buffers:
            if a.shape == shape and sys.getrefcount(a) == 3:   # the list, the loop variable, the call
                return a
        a = self.maker.new_output()
        if len(self.buffers) < len(self.queue) + 4:
            self.buffers.append(a)
        return a

    def __next__(self):
        out = self.queue.popleft().result()
        self._submit()
        return out

    def _shutdown_workers(self):
        for f in self.queue:
            f.cancel()
        self.pool.shutdown(wait=True)


class Feeder:
    """Endless iterator of (float data, labels) batches on ``device``.

    backend "thread" (default for a CPU consumer; finished batches, no copies) or "process"
    (default for a GPU: DataLoader workers ship uint8 batches into pinned memory, the GPU finishes);
    ``RECAFFE_DATA_BACKEND`` overrides."""

    def __init__(self, maker, num_workers=None, prefetch=4, device="cpu", start=0, backend=None):
        self.maker = maker
        self.device = torch.device(device)
        workers = default_workers() if num_workers is None else num_workers
        self.next_batch = start
        cpu = self.device.type == "cpu"
        backend = backend or os.environ.get("RECAFFE_DATA_BACKEND") or ("thread" if cpu else "process")
        if backend not in ("thread", "process"):
            raise DataError(f"RECAFFE_DATA_BACKEND={backend!r}; valid: thread, process")
        if not getattr(maker.source, "process_safe", True):   # a LevelDB: one process may open it
            backend = "thread"
        maker.finish_here = cpu   # a CPU consumer: finish straight from the crop views (no stacked copy)
        if workers == 0:
            self._it = None
        elif backend == "thread":
            self._it = _ThreadPrefetch(maker, start, workers, int(prefetch))
        else:
            loader = DataLoader(maker, batch_size=None, sampler=_From(start), num_workers=workers,
                                prefetch_factor=max(1, -(-int(prefetch) // workers)),
                                pin_memory=self.device.type == "cuda", persistent_workers=False,
                                collate_fn=lambda x: x,
                                multiprocessing_context="fork" if os.name == "posix" else None)
            self._it = iter(loader)

    def __next__(self):
        if self._it is None:
            data, labels, plans = self.maker[self.next_batch]
        else:
            data, labels, plans = next(self._it)
        self.next_batch += 1
        nb = self.device.type == "cuda"
        data = data.to(self.device, non_blocking=nb)
        if plans is not None:
            data = self.maker.tf.finish(data, plans)
        return data, labels.to(self.device, non_blocking=nb)

    def __iter__(self):
        return self

    def close(self):
        it, self._it = self._it, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
