"""Data layers: Data (LMDB or LevelDB), ImageData (image list), HDF5Data, HDF5Output, MemoryData.

Caffe sources: src/caffe/layers/data_layer.cpp, base_data_layer.cpp, image_data_layer.cpp,
hdf5_data_layer.cpp, hdf5_output_layer.cpp, memory_data_layer.cpp. Data layers have no bottoms, are
called with no arguments and return their tops; top shapes come from the first record (first batch),
as Caffe's DataLayerSetUp does. Data and ImageData feed through netspec.data.loader (worker
threads, or processes for a GPU consumer; prefetch); their augmentation seed is drawn from torch's
global generator when the layer is built (so ``torch.manual_seed(random_seed)`` before building makes a run reproducible), or set
``layer.seed`` / ``layer.num_workers`` before the first forward.

Data parallel (recaffe.solver.distributed): ``layer.shard(rank, world)`` before the first forward
makes local batch b the global batch ``b * world + rank`` of the same stream (same seed on every
rank), for Data, ImageData, HDF5Data (and WindowData); MemoryData is fed by the caller.
"""

import numpy as np
import torch

from recaffe.protos.errors import DataError
from recaffe.netspec.data import hdf5
from recaffe.netspec.data.loader import BatchMaker, Feeder
from recaffe.netspec.data.sources import ImageListSource, LMDBSource
from recaffe.netspec.data.transformer import DataTransformer
from .base import Layer
from .registry import register


def follow(tops, probe):
    """[scale-out] data tops on the net's device (and floating dtype), as ``net.to()`` set ``probe``."""
    return [t.to(probe.device, probe.dtype if t.is_floating_point() else t.dtype) for t in tops]


class _FeedLayer(Layer):
    """Shared machinery of Data and ImageData: a BatchMaker run by a Feeder (netspec.data.loader)."""
    exact_bottoms = 0
    is_data = True

    def _setup_feed(self, source, batch_size, prefetch, shuffle=False, skip=0):
        if batch_size <= 0:
            raise self.error(f"batch_size must be > 0, got {batch_size}")
        self.tf = DataTransformer(self.lp.transform_param, self.phase, where=f"layer '{self.name}'")
        self.seed = int(torch.randint(0, 2 ** 62, ()).item())
        self.num_workers = None
        self.prefetch = max(1, int(prefetch))
        self._maker = BatchMaker(source, self.tf, batch_size, self.seed, shuffle, skip)
        first = source.load(self._maker.index(self._maker.skip))[0]     # not a whole batch of indices
        self.tf.check_source_shape(first.shape)
        self.top_shapes = [(batch_size,) + self.tf.out_shape(first.shape), (batch_size,)][:len(self.lp.top)]
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        self._feeder = None
        self._next_batch = 0   # batches served so far: a restarted feeder continues from here

    def shard(self, rank, world):
        """[scale-out] serve global batch b * world + rank as local batch b (see the module doc)."""
        self.close()
        self._maker.rank, self._maker.world = int(rank), int(world)

    def forward(self):
        if self._feeder is None:
            self._maker.seed = self.seed
            self._feeder = Feeder(self._maker, self.num_workers, self.prefetch, self._device_probe.device,
                                  start=self._next_batch)
        data, labels = next(self._feeder)
        self._next_batch += 1
        return follow([data, labels][:len(self.lp.top)], self._device_probe)

    def close(self):
        """Stop the loader workers (they also stop when the layer is garbage-collected)."""
        if self._feeder is not None:
            self._feeder.close()
            self._feeder = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


@register("Data")
class Data(_FeedLayer):
    min_tops, max_tops = 1, 2

    def setup(self, p):
        if not p.source:
            raise self.error("data_param.source is empty; give the path of an LMDB or LevelDB")
        tp = self.lp.transform_param
        color = "color" if tp.force_color else "gray" if tp.force_gray else None
        # Caffe 1.0's DataLayer reads from the first key and ignores rand_skip. The database is read
        # as what it is (LMDB or LevelDB, netspec.data.sources.open_reader), whatever backend says.
        try:
            source = LMDBSource(p.source, color)
        except DataError as e:
            raise DataError(f"layer '{self.name}': {e}") from None
        self._setup_feed(source, int(p.batch_size), p.prefetch)


@register("ImageData")
class ImageData(_FeedLayer):
    exact_tops = 2

    def setup(self, p):
        if not p.source:
            raise self.error("image_data_param.source is empty; give a list file of '<path> <label>' lines")
        source = ImageListSource(p.source, p.root_folder, p.is_color, p.new_height, p.new_width)
        skip = 0
        if p.rand_skip:
            skip = int(torch.randint(0, int(p.rand_skip), ()).item())
            if skip >= len(source):
                raise DataError(f"layer '{self.name}': rand_skip drew {skip}, but {p.source} has only "
                                f"{len(source)} entries")
        self._setup_feed(source, int(p.batch_size), self.lp.data_param.prefetch, bool(p.shuffle), skip)


@register("MemoryData")
class MemoryData(Layer):
    """Arrays handed in from Python (pycaffe's ``net.set_input_arrays``); no transformation applied."""
    exact_bottoms = 0
    exact_tops = 2
    is_data = True

    def setup(self, p):
        self.batch_size = int(p.batch_size)
        self.chw = (int(p.channels), int(p.height), int(p.width))
        if self.batch_size <= 0 or min(self.chw) <= 0:
            raise self.error("memory_data_param: batch_size, channels, height and width must all be > 0, "
                             f"got {self.batch_size}, {self.chw}")
        self.top_shapes = [(self.batch_size,) + self.chw, (self.batch_size,)]
        self._data = self._labels = None
        self._pos = 0
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)

    def set_input_arrays(self, data, labels):
        data = np.asarray(data)
        labels = np.asarray(labels)
        if data.dtype != np.float32 or labels.dtype != np.float32:
            raise DataError(f"layer '{self.name}': set_input_arrays needs float32 arrays, got "
                            f"{data.dtype} and {labels.dtype}")
        if data.ndim != 4 or tuple(data.shape[1:]) != self.chw:
            raise DataError(f"layer '{self.name}': data must be (N, {', '.join(map(str, self.chw))}), "
                            f"got {data.shape}")
        if labels.shape[0] != data.shape[0] or labels.size != data.shape[0]:
            raise DataError(f"layer '{self.name}': need one label per item ({data.shape[0]}), got {labels.shape}")
        if data.shape[0] == 0 or data.shape[0] % self.batch_size:
            raise DataError(f"layer '{self.name}': the number of items ({data.shape[0]}) must be a positive "
                            f"multiple of batch_size ({self.batch_size})")
        self._data = torch.from_numpy(np.ascontiguousarray(data))
        self._labels = torch.from_numpy(np.ascontiguousarray(labels.reshape(-1)))
        self._pos = 0

    def forward(self):
        if self._data is None:
            raise DataError(f"layer '{self.name}' (MemoryData): no data; call set_input_arrays(data, labels) first")
        s = slice(self._pos, self._pos + self.batch_size)
        self._pos = (self._pos + self.batch_size) % self._data.shape[0]
        return follow([self._data[s].clone(), self._labels[s].clone()], self._device_probe)


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is an install extra
        raise DataError("HDF5 layers need h5py: pip install h5py") from None
    return h5py


@register("HDF5Data")
class HDF5Data(Layer):
    """Rows of the listed HDF5 files, in order, continuing across files and wrapping at the end."""
    exact_bottoms = 0
    min_tops = 1
    is_data = True

    def setup(self, p):
        if self.lp.HasField("transform_param"):
            raise self.error("HDF5Data does not transform its data; remove transform_param")
        self.batch_size, self.shuffle = int(p.batch_size), bool(p.shuffle)
        if self.batch_size <= 0:
            raise self.error(f"hdf5_data_param.batch_size must be > 0, got {self.batch_size}")
        self.files = hdf5.read_source_list(p.source, self.name)
        self._rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
        self._file_order = self._rng.permutation(len(self.files)) if self.shuffle else np.arange(len(self.files))
        self._file_pos = 0
        self._load(self._file_order[0])
        self.top_shapes = [(self.batch_size,) + a.shape[1:] for a in self._arrays]
        self.rank, self.world = 0, 1   # [scale-out] data-parallel shard (see shard())
        self._served = self._local = 0
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)

    def shard(self, rank, world):
        """[scale-out] local batch b is global batch b * world + rank of the row stream: the batches of
        the other ranks are stepped over (rows are only counted, not copied)."""
        self.rank, self.world = int(rank), int(world)

    def _load(self, k):
        arrays = hdf5.load_tops(self.files[k], list(self.lp.top), self.name)   # sizes checked first
        rows = arrays[0].shape[0]
        self._arrays, self._row = arrays, 0
        self._rows = self._rng.permutation(rows) if self.shuffle else np.arange(rows)

    def _next(self):
        self._row += 1
        if self._row == len(self._rows):
            if len(self.files) > 1:
                self._file_pos += 1
                if self._file_pos == len(self.files):
                    self._file_pos = 0
                    if self.shuffle:
                        self._file_order = self._rng.permutation(len(self.files))
                self._load(self._file_order[self._file_pos])
            self._row = 0
            if self.shuffle:
                self._rows = self._rng.permutation(len(self._rows))

    def forward(self):
        while self._served < self._local * self.world + self.rank:   # other ranks' batches
            for _ in range(self.batch_size):
                self._next()
            self._served += 1
        picks = []
        for _ in range(self.batch_size):
            picks.append([a[self._rows[self._row]] for a in self._arrays])
            self._next()
        self._served += 1
        self._local += 1
        return follow([torch.from_numpy(np.stack([p[j] for p in picks])) for j in range(len(self._arrays))],
                      self._device_probe)


@register("HDF5Output")
class HDF5Output(Layer):
    """Writes bottoms 0 and 1 as datasets "data" and "label" of hdf5_output_param.file_name."""
    exact_bottoms = 2
    exact_tops = 0

    def setup(self, p):
        self.file_name = p.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is empty")

    def forward(self, data, label):
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return []          # [scale-out] data parallel: one writer (rank 0) for the one file name
        def legacy4(t):  # Caffe reshapes to (num, channels, height, width)
            a = t.detach().cpu().numpy().astype(np.float32)
            return a.reshape(a.shape + (1,) * (4 - a.ndim)) if a.ndim < 4 else a
        with _h5py().File(self.file_name, "w") as f:
            f.create_dataset("data", data=legacy4(data))
            f.create_dataset("label", data=legacy4(label))
        return []
