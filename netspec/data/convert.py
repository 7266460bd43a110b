"""The work behind tools/convert_imageset.py and tools/compute_image_mean.py
(Caffe: tools/convert_imageset.cpp, tools/compute_image_mean.cpp, src/caffe/util/io.cpp).

convert_imageset: list lines -> Datums in an LMDB, key ``%08d_<path>`` (line index in the possibly
shuffled list, so keys sort in list order). Raw datums hold CHW BGR bytes; encoded datums hold the
original file bytes when Caffe stores them verbatim (encoding requested, no resize, and the file's
extension is the encoding: always when the type is guessed from the extension, and e.g. .png files
with --encode_type png, even with --gray; the file is checked by parsing its header, not decoded --
OpenCV too accepts truncated JPEGs), otherwise the decoded (resized) image re-encoded. Decoding,
resizing and encoding are OpenCV's (netspec.data.image), so the datums are Caffe's byte for byte.

Reading, decoding, resizing and serialising run in forked worker processes (one OpenCV thread each;
neither torch nor anything heavy is imported), results come back in list order and the calling
process writes the LMDB, atomically (lmdb_io.LMDBWriter). workers <= 1: all in the calling process.
"""
import os
import signal
import sys
import threading
import time

import numpy as np

from recaffe.protos.errors import DataError
from .datum import decode_value, encoded_datum_parts, join_parts, parse_datum, parts_size, put_parts, raw_datum_parts
from .image import COLOR, GRAY, check_image_header, cv2, encode_hwc, hwc_to_chw, read_file, read_image_hwc
from .leveldb_io import LevelDBWriter
from .lmdb_io import LMDBWriter
from .sources import open_reader
from .sources import read_list


class _Job:
    """What a worker needs to turn a list entry into (key, Datum parts, line, size or error)."""

    def __init__(self, root, gray, height, width, encode, encode_type):
        self.root, self.mode = root, GRAY if gray else COLOR
        self.height, self.width = height, width
        self.encode, self.encode_type = encode, encode_type

    def _ext_matches(self, path):
        """Caffe's matchExt (src/caffe/util/io.cpp) as the real tool behaves: the file's extension
        equals the encoding, case-insensitively ("jpg" also takes .jpeg); a guessed encoding (no
        --encode_type) is the extension itself."""
        if not self.encode_type:
            return True
        ext, enc = os.path.splitext(path)[1][1:].lower(), self.encode_type.lower()
        return ext == enc or (enc == "jpg" and ext == "jpeg")

    def __call__(self, item):
        index, (path, label, line) = item
        key = ("%08d_%s" % (index, path)).encode("utf-8", "surrogateescape")
        full = self.root + path
        try:
            if self.encode and not (self.height and self.width) and self._ext_matches(path):
                raw = read_file(full)          # Caffe stores the file itself (after a decode check)
                check_image_header(raw, where=full)
                return key, encoded_datum_parts(raw, label), line, 0
            img = read_image_hwc(full, self.mode, self.height, self.width)
            if self.encode:
                fmt = self.encode_type or os.path.splitext(path)[1]
                return key, encoded_datum_parts(encode_hwc(img, fmt, full), label), line, 0
            chw = hwc_to_chw(img)
            return key, raw_datum_parts(chw, label), line, chw.size
        except DataError as e:
            return key, None, line, str(e)


class _Arena:
    """Shared anonymous memory (inherited by forked workers), ``slots`` regions of ``size`` bytes:
    a worker writes a chunk's serialized datums straight into the region the parent gave the task,
    and the parent hands them to LMDB from there (nothing large goes through a pipe or pickle)."""

    def __init__(self, slots, size):
        import mmap
        self.size = size
        self.mem = mmap.mmap(-1, slots * size)
        self.view = memoryview(self.mem)

    def fill(self, slot, results):
        """(key, (offset, length) into the arena or bytes when the region is full, line, info)."""
        pos, end, out = slot * self.size, (slot + 1) * self.size, []
        for key, parts, line, info in results:
            if parts is not None:
                n = parts_size(parts)
                if pos + n <= end:
                    put_parts(parts, self.view[pos:pos + n])
                    parts, pos = (pos, n), pos + n
                else:
                    parts = bytes(join_parts(parts))
            out.append((key, parts, line, info))
        return out

    def value(self, v):
        return self.view[v[0]:v[0] + v[1]] if isinstance(v, tuple) else v

    def close(self):
        self.view = self.mem = None    # unmapped when the last value handed out is gone


_WORKER = {}


def tune_malloc():
    """glibc malloc for a process that decodes image after image: buffers below 32 MiB from the heap
    (not a fresh mmap each) and freed memory kept for reuse (no trimming), so the pages of one
    image's buffers are not faulted in and zeroed again for the next (measured: half the page
    faults, ~0.3-0.5 CPU ms less per image in convert_imageset). For the tool's processes only: it
    changes how the process returns memory to the system. False where there is no mallopt."""
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3      # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 512 << 20))


def _worker_init(job, arena):
    """A forked convert worker: Ctrl-C is the parent's business; one OpenCV thread (the processes
    are the parallelism)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    cv2().setNumThreads(1)
    tune_malloc()
    _WORKER.update(job=job, arena=arena)


def _run_chunk(task):
    slot, items = task
    return _WORKER["arena"].fill(slot, [_WORKER["job"](it) for it in items])


class _Parallel:
    """Results of ``job`` over the entries, in list order, from ``workers`` forked processes
    (started at once, before the LMDB is opened): iterating yields (key, value buffer or None, line,
    info), a value valid until the next item is asked for; ``close()`` stops the workers."""

    def __init__(self, job, entries, workers, per_item):
        import multiprocessing
        self.entries, self.slots = entries, 3 * workers
        self.chunk = max(1, min(16, (4 << 20) // per_item, len(entries) // (4 * workers)))
        self.arena = _Arena(self.slots, max(4 << 20, self.chunk * per_item))
        self.pool = multiprocessing.get_context("fork").Pool(workers, _worker_init, (job, self.arena))

    def __iter__(self):
        import collections
        tasks = iter(enumerate(range(0, len(self.entries), self.chunk)))
        pending = collections.deque()

        def submit():
            task = next(tasks, None)
            if task is not None:
                k, start = task
                items = list(enumerate(self.entries[start:start + self.chunk], start))
                pending.append(self.pool.apply_async(_run_chunk, ((k % self.slots, items),)))
        for _ in range(self.slots):
            submit()
        while pending:
            for key, v, line, info in pending.popleft().get():
                yield key, (None if v is None else self.arena.value(v)), line, info
            submit()           # the slot just read is free again

    def close(self):
        self.pool.terminate()
        self.pool.join()
        self.arena.close()


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


def convert_imageset(root, list_file, db_name, gray=False, shuffle=False, resize_height=0, resize_width=0,
                     check_size=False, encoded=False, encode_type="", backend="lmdb", skip_bad=False,
                     workers=None, seed=None, progress=True, log=sys.stderr):
    """Write the LMDB (or LevelDB); returns a summary dict (written, skipped, bad lines, seconds)."""
    if backend.lower() not in ("lmdb", "leveldb"):
        raise DataError(f"--backend {backend!r}: valid backends: lmdb, leveldb")
    leveldb = backend.lower() == "leveldb"
    if leveldb:
        LevelDBWriter.check_available()
    t0 = time.time()
    entries, bad = read_list(list_file, skip_bad=True)
    if bad and not skip_bad:
        raise DataError(bad[0] + " (use --skip-bad to skip such lines)")
    if shuffle:
        entries = [entries[i] for i in np.random.default_rng(seed).permutation(len(entries))]
    height, width = max(0, int(resize_height)), max(0, int(resize_width))
    if not (height and width):
        height = width = 0
    job = _Job(root, gray, height, width, bool(encoded or encode_type), encode_type)
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    bar = _Progress(len(entries), log, progress)
    written, size0, skipped = 0, None, list(bad)
    fork, results = hasattr(os, "fork"), None
    threads = cv2().getNumThreads()
    cv2().setNumThreads(1)
    old_term = _term_as_interrupt()
    try:
        if workers > 1 and len(entries) > 1 and fork:
            # bytes per datum, to size the shared slots (a datum that does not fit travels by pipe):
            # raw and re-encoded resized images are at most about C*H*W, files stored verbatim ~256 KiB
            if height:
                per_item = (1 if gray else 3) * height * width + 1024
            else:
                per_item = 256 << 10 if job.encode else 1 << 20
            results = _Parallel(job, entries, workers, per_item)
        else:
            results = ((k, None if v is None else join_parts(v), line, info)
                       for k, v, line, info in map(job, enumerate(entries)))
        # small transactions: a commit writes its pages while the workers keep filling their slots
        # (every 1000, as Caffe, stalls them: measured ~10% slower on 256x256 raw datums)
        # LevelDB: a write batch every 1000 records, as Caffe's convert_imageset
        with (LevelDBWriter(db_name) if leveldb else LMDBWriter(db_name, commit_every=128)) as db:
            for done, (key, value, line, info) in enumerate(results, 1):
                if value is None:
                    if not skip_bad:
                        raise DataError(f"{list_file}:{line}: {info} (use --skip-bad to skip such lines)")
                    skipped.append(f"{list_file}:{line}: {info}")
                else:
                    if check_size:
                        size0 = info if size0 is None else size0
                        if info != size0:
                            raise DataError(f"{list_file}:{line}: {key.decode(errors='replace')}: datum of {info} "
                                            f"bytes, the first had {size0} (--check_size; resize to one size "
                                            f"or drop the flag)")
                    db.put(key, value)
                    written += 1
                bar.update(done)
            if written == 0:
                raise DataError(f"{list_file}: no image could be converted; nothing written to {db_name}")
        bar.update(len(entries), final=True)
    finally:
        if results is not None:
            results.close()        # stops the workers
        cv2().setNumThreads(threads)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return {"written": written, "skipped": skipped, "seconds": time.time() - t0, "db": db_name}


def _decode_value(db_name, item):
    key, value = bytes(item[0]), item[1]
    return key, decode_value(value, None, lambda: f"{db_name}: key {key.decode(errors='replace')!r}")[0]


def compute_image_mean(db_name, workers=None, backend="lmdb"):
    """Element-wise mean of all datums, as Caffe: a float32 running sum in key order, then / count.

    While every partial sum is an integer below 2**24 (uint8 data, count * 255 < 2**24) float32 adds
    are exact, so integer sums give Caffe's float32 sum bit for bit: uint8 datums are summed in
    uint16 blocks of 257 (257 * 255 < 2**16; the cheapest numpy add) folded into uint32. Otherwise
    the sum is accumulated in float32, one datum at a time in Caffe's order."""
    if backend.lower() not in ("lmdb", "leveldb"):
        raise DataError(f"--backend {backend!r}: valid backends: lmdb, leveldb")
    reader = open_reader(db_name)     # the database as it is, whichever --backend says
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    first = parse_datum(reader.get(0), f"{db_name}: key {reader.keys[0].decode(errors='replace')!r}")
    pool = None
    if workers > 1 and first.encoded:   # OpenCV's decoder releases the GIL: threads decode in parallel
        from multiprocessing.pool import ThreadPool
        pool = ThreadPool(workers)
    exact_int = len(reader) * 255 < (1 << 24) and (first.encoded or len(first.data) > 0)
    acc, block, in_block, count, shape0 = None, None, 0, 0, None
    try:
        def decode(item):
            return _decode_value(db_name, item)
        # in-line, records are zero-copy views of the memory map, used before the cursor moves on
        it = pool.imap(decode, reader.items(), chunksize=16) if pool else map(decode, reader.items(buffers=True))
        for key, arr in it:
            if shape0 is None:
                shape0 = arr.shape
                acc = np.zeros(arr.shape, np.uint32 if exact_int else np.float32)
                block = np.zeros(arr.shape, np.uint16) if exact_int else None
            elif arr.shape != shape0:
                raise DataError(f"{db_name}: key {key.decode(errors='replace')!r}: datum of shape {arr.shape}, "
                                f"the first has {shape0}; compute_image_mean needs one size")
            if exact_int and arr.dtype != np.uint8:   # float_data datum: Caffe's float32 path from here
                acc += block
                acc, exact_int, in_block = acc.astype(np.float32), False, 0
            if exact_int:
                np.add(block, arr, out=block, casting="unsafe")
                in_block += 1
                if in_block == 257:
                    acc += block
                    block[...] = 0
                    in_block = 0
            else:
                np.add(acc, arr, out=acc, casting="unsafe")
            count += 1
        if exact_int and in_block:
            acc += block
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return (acc.astype(np.float32) / np.float32(count)).astype(np.float32), count
