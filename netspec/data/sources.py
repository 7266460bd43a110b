"""Record sources of the data layers: an LMDB or LevelDB of Datums (Data layer) and an image list
(ImageData).

Both are picklable and cheap to send to loader workers; ``load(i)`` returns record i as
``(C x H x W array, label)``. The list file format is Caffe's (src/caffe/layers/image_data_layer.cpp,
tools/convert_imageset.cpp): ``<path> <label>`` split at the **last** space (paths may contain
spaces); the image path is ``root_folder + path`` (plain concatenation). Caffe reads the label with
``atoi`` (garbage -> 0); we raise a DataError naming file:line instead, because a silent label 0 is
never what the user meant. Blank lines are ignored.
"""
import contextlib

from recaffe.protos.errors import DataError
from .datum import decode_value
from .image import COLOR, GRAY, read_image
from .leveldb_io import LevelDBReader, is_leveldb
from .lmdb_io import LMDBReader


def parse_list_line(line, where):
    """(path, label) of one list-file line, or a DataError naming ``where`` (file:line)."""
    text = line.rstrip("\r\n")
    pos = text.rfind(" ")
    if pos <= 0:
        raise DataError(f"{where}: expected '<image path> <integer label>', got {text!r}")
    path, label = text[:pos], text[pos + 1:]
    try:
        return path, int(label)
    except ValueError:
        raise DataError(f"{where}: label {label!r} is not an integer (line {text!r})") from None


def read_list(list_file, skip_bad=False):
    """The (path, label, line number) entries of a list file; with skip_bad, also the bad lines as
    a list of error messages instead of raising on the first."""
    try:
        with open(list_file, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.readlines()
    except OSError as e:
        raise DataError(f"{list_file}: cannot read list file: {e.strerror}") from None
    entries, bad = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            path, label = parse_list_line(line, f"{list_file}:{n}")
        except DataError as e:
            if not skip_bad:
                raise
            bad.append(str(e))
            continue
        entries.append((path, label, n))
    if not entries and not bad:
        raise DataError(f"{list_file}: list file has no entries")
    return (entries, bad) if skip_bad else entries


def open_reader(path):
    """A reader of the LMDB or LevelDB at ``path``, whichever it is (Caffe opens the one
    data_param.backend names; recaffe reads what is there)."""
    return LevelDBReader(path) if is_leveldb(str(path)) else LMDBReader(path)


class LMDBSource:
    """Datums of an LMDB or a LevelDB (open_reader) in key order; encoded datums are decoded with
    ``color_mode``. ``process_safe``: whether forked workers may read it (a LevelDB: no)."""

    def __init__(self, path, color_mode=None):
        self.reader = open_reader(path)
        self.color_mode = color_mode
        self.process_safe = getattr(self.reader, "process_safe", True)

    def __len__(self):
        return len(self.reader)

    def where(self, i):
        return f"{self.reader.path}: key {self.reader.keys[i].decode(errors='replace')!r}"

    def decode(self, i, value):
        return decode_value(value, self.color_mode, lambda: self.where(i))

    def load(self, i):
        return self.decode(i, self.reader.get(i))

    def load_many(self, indices):
        return [self.decode(i, v) for i, v in zip(indices, self.reader.get_many(indices))]

    @contextlib.contextmanager
    def views(self, indices):
        """Like ``load_many``, but raw uint8 datums come as arrays viewing the LMDB's memory map
        (no copy; see ``decode_value``): use them inside the ``with`` block only."""
        with self.reader.buffers(indices) as bufs:
            yield [self.decode(i, v) for i, v in zip(indices, bufs)]


class ImageListSource:
    """Images of a list file (root_folder + path), read colour/grey, resized if both sizes > 0."""

    def __init__(self, list_file, root_folder="", is_color=True, new_height=0, new_width=0):
        self.list_file = list_file
        self.entries = read_list(list_file)
        self.root = root_folder
        self.mode = COLOR if is_color else GRAY
        if (new_height > 0) != (new_width > 0):
            raise DataError(f"{list_file}: new_height and new_width must both be set (> 0) or both be 0, "
                            f"got {new_height} and {new_width}")
        self.size = (int(new_height), int(new_width))

    def __len__(self):
        return len(self.entries)

    def where(self, i):
        path, _, n = self.entries[i]
        return f"{self.list_file}:{n}: {self.root + path}"

    def load(self, i):
        path, label, n = self.entries[i]
        try:
            return read_image(self.root + path, self.mode, *self.size), label
        except DataError as e:
            raise DataError(f"{self.list_file}:{n}: {e}") from None

    def load_many(self, indices):
        return [self.load(i) for i in indices]
