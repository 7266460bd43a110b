"""The work behind tools/convert_imageset.py and tools/compute_image_mean.py
(Caffe: tools/convert_imageset.cpp, tools/compute_image_mean.cpp, src/caffe/util/io.cpp).

convert_imageset: list lines -> Datums in an LMDB, key ``%08d_<path>`` (line index in the possibly
shuffled list, so keys sort in list order). Raw datums hold CHW BGR bytes; encoded datums hold the
original file bytes when Caffe 1.0 would store them verbatim (encoding requested, no resize and the
type guessed from the file extension; the file is checked by parsing its header, not decoded --
OpenCV too accepts truncated JPEGs), otherwise the decoded (resized) image re-encoded (PIL here,
OpenCV's imencode in Caffe: same pixels for PNG, not byte-identical for JPEG). Decoding, resizing and
serialising run in a pool of threads (PIL's decoders and resampling release the GIL; threads cost
less CPU and memory than processes here, as nothing is pickled), results in list order; the LMDB is
written by the calling thread, atomically.
Resizing uses torch's uint8 bilinear (one intra-op thread per worker) unless ``exact_resize`` (see netspec.data.image.resize).
"""
import functools
import os
import signal
import sys
import threading
import time
from multiprocessing.pool import ThreadPool

import numpy as np

from protos.errors import DataError
from .datum import array_to_datum, datum_to_array, encoded_datum, parse_datum, raw_datum_view
from .image import COLOR, GRAY, check_image_header, encode_image, read_image
from .lmdb_io import LEVELDB_HINT, LMDBReader, LMDBWriter
from .sources import read_list


class _Job:
    """What one worker needs to turn a list entry into (key, serialized Datum)."""

    def __init__(self, root, gray, height, width, encode, encode_type, exact_resize=False):
        self.root, self.mode = root, GRAY if gray else COLOR
        self.exact_resize = exact_resize
        self.height, self.width = height, width
        self.encode, self.encode_type = encode, encode_type

    def __call__(self, item):
        index, (path, label, line) = item
        key = "%08d_%s" % (index, path)
        full = self.root + path
        try:
            if self.encode and not self.encode_type and not (self.height and self.width):
                with open(full, "rb") as f:   # Caffe 1.0 stores the file itself (after a decode check)
                    raw = f.read()
                check_image_header(raw, where=full)
                datum = encoded_datum(raw, label)
            else:
                img = read_image(full, self.mode, self.height, self.width, self.exact_resize)
                if self.encode:
                    datum = encoded_datum(encode_image(img, self.encode_type or os.path.splitext(path)[1]), label)
                else:
                    datum = array_to_datum(img, label)
                    datum.encoded = False   # Caffe's CVMatToDatum sets it explicitly
        except DataError as e:
            return key, None, line, str(e)
        return key, datum.SerializeToString(), line, (0 if self.encode else len(datum.data))


class _Progress:
    def __init__(self, total, stream=sys.stderr, enabled=True):
        self.total, self.stream, self.enabled = total, stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.time()
        self.last = 0.0

    def update(self, done, final=False):
        if not self.enabled:
            return
        now = time.time()
        if self.tty and (final or now - self.last > 0.2):
            frac = done / max(1, self.total)
            bar = "#" * int(30 * frac)
            rate = done / max(1e-9, now - self.t0)
            self.stream.write(f"\r[{bar:<30}] {done}/{self.total} {rate:7.1f} img/s")
            self.stream.flush()
            self.last = now
            if final:
                self.stream.write("\n")
        elif not self.tty and (final or done % 1000 == 0):
            self.stream.write(f"Processed {done} files.\n")


def _term_as_interrupt():
    """SIGTERM -> KeyboardInterrupt while writing, so the temporary database is removed."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt
    return signal.signal(signal.SIGTERM, handler)


def _one_torch_thread():
    """torch's resize in one intra-op thread (the pool's threads are the parallelism; OpenMP's
    setting is per calling thread, so each worker calls this too); returns the previous count."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    return n


def convert_imageset(root, list_file, db_name, gray=False, shuffle=False, resize_height=0, resize_width=0,
                     check_size=False, encoded=False, encode_type="", backend="lmdb", skip_bad=False,
                     workers=None, seed=None, progress=True, log=sys.stderr, exact_resize=False):
    """Write the LMDB; returns a summary dict (written, skipped, bad lines, seconds).
    exact_resize: OpenCV's fixed-point bilinear bit for bit (slow) instead of PIL's (within 1 level)."""
    if backend.lower() == "leveldb":
        raise DataError(f"--backend leveldb: {LEVELDB_HINT}")
    if backend.lower() != "lmdb":
        raise DataError(f"--backend {backend!r}: valid backends: lmdb")
    t0 = time.time()
    entries, bad = read_list(list_file, skip_bad=True)
    if bad and not skip_bad:
        raise DataError(bad[0] + " (use --skip-bad to skip such lines)")
    if shuffle:
        entries = [entries[i] for i in np.random.default_rng(seed).permutation(len(entries))]
    height, width = max(0, int(resize_height)), max(0, int(resize_width))
    if not (height and width):
        height = width = 0
    job = _Job(root, gray, height, width, bool(encoded or encode_type), encode_type, exact_resize)
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    bar = _Progress(len(entries), log, progress)
    written, size0, skipped = 0, None, list(bad)
    torch_threads = _one_torch_thread() if height and not exact_resize else None
    pool = ThreadPool(workers, _one_torch_thread if torch_threads else None) if workers > 1 else None
    old_term = _term_as_interrupt()
    try:
        results = pool.imap(job, enumerate(entries), chunksize=8) if pool else map(job, enumerate(entries))
        with LMDBWriter(db_name) as db:
            for done, (key, value, line, info) in enumerate(results, 1):
                if value is None:
                    if not skip_bad:
                        raise DataError(f"{list_file}:{line}: {info} (use --skip-bad to skip such lines)")
                    skipped.append(f"{list_file}:{line}: {info}")
                else:
                    if check_size:
                        size0 = info if size0 is None else size0
                        if info != size0:
                            raise DataError(f"{list_file}:{line}: {key}: datum of {info} bytes, the first had "
                                            f"{size0} (--check_size; resize to one size or drop the flag)")
                    db.put(key, value)
                    written += 1
                bar.update(done)
            if written == 0:
                raise DataError(f"{list_file}: no image could be converted; nothing written to {db_name}")
        bar.update(len(entries), final=True)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if torch_threads is not None:
            import torch
            torch.set_num_threads(torch_threads)
    return {"written": written, "skipped": skipped, "seconds": time.time() - t0, "db": db_name}


def _decode_value(db_name, item):
    key, value = item
    r = raw_datum_view(value)
    if r is not None:           # raw uint8 datum: a view of the value, no protobuf copy
        return bytes(key), np.frombuffer(r[3], np.uint8).reshape(r[:3])
    key = bytes(key)
    where = f"{db_name}: key {key.decode(errors='replace')!r}"
    d = parse_datum(value, where)
    return key, datum_to_array(d, None, where)


def compute_image_mean(db_name, workers=None, backend="lmdb"):
    """Element-wise mean of all datums, as Caffe: a float32 running sum in key order, then / count.

    While every partial sum is an integer below 2**24 (uint8 data, count * 255 < 2**24) float32 adds
    are exact, so summing in uint32 (a faster loop) gives Caffe's float32 sum bit for bit; otherwise
    the sum is accumulated in float32, one datum at a time in Caffe's order."""
    if backend.lower() == "leveldb":
        raise DataError(f"--backend leveldb: {LEVELDB_HINT}")
    reader = LMDBReader(db_name)
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    first = parse_datum(reader.get(0), f"{db_name}: key {reader.keys[0].decode(errors='replace')!r}")
    pool = ThreadPool(workers) if workers > 1 and first.encoded else None
    exact_int = len(reader) * 255 < (1 << 24) and (first.encoded or len(first.data) > 0)
    acc, count, shape0 = None, 0, None
    try:
        decode = functools.partial(_decode_value, db_name)
        # in-line, records are zero-copy views of the memory map, used before the cursor moves on
        it = pool.imap(decode, reader.items(), chunksize=16) if pool else map(decode, reader.items(buffers=True))
        for key, arr in it:
            if shape0 is None:
                shape0 = arr.shape
                acc = np.zeros(arr.shape, np.uint32 if exact_int else np.float32)
            elif arr.shape != shape0:
                raise DataError(f"{db_name}: key {key.decode(errors='replace')!r}: datum of shape {arr.shape}, "
                                f"the first has {shape0}; compute_image_mean needs one size")
            if exact_int and arr.dtype != np.uint8:   # float_data datum: Caffe's float32 path from here
                acc, exact_int = acc.astype(np.float32), False
            np.add(acc, arr, out=acc, casting="unsafe")
            count += 1
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return (acc.astype(np.float32) / np.float32(count)).astype(np.float32), count
