"""Resource limits: what recaffe refuses *before* it allocates or reads, with one line naming the
place (file, layer, blob), the size asked for and the limit.

Caffe's own limits (include/caffe/blob.hpp, src/caffe/blob.cpp Blob::Reshape; src/caffe/util/io.cpp):

* a blob has at most ``kMaxBlobAxes`` = 32 axes, no negative dimension, and at most INT_MAX
  elements (``CHECK_LE(shape[i], INT_MAX / count_) << "blob size exceeds INT_MAX"``);
* a binary proto is read with ``SetTotalBytesLimit(kProtoReadBytesLimit)`` = INT_MAX bytes.

recaffe's own, each overridable through the environment (read at every check, so a test or a user
can change them at run time):

``RECAFFE_MAX_BLOB_ELEMENTS``  elements per blob (default INT_MAX, Caffe's).
``RECAFFE_MAX_IMAGE_PIXELS``   width x height of one image, read from the header before decoding
                               (default 2**28 = 268,435,456, e.g. 16384 x 16384; OpenCV's own default
                               is 2**30, PIL warns at 89,478,485).
``RECAFFE_MAX_PROTOTXT_BYTES`` size of a text prototxt / solver file (default 16 MiB). protobuf's
                               Python text parser takes ~6 us per field, so 16 MiB of the densest
                               legal text parses in well under 20 s; real nets are below 1 MB.
                               Binary protos stop at protobuf's 2 GB (INT_MAX bytes) as in Caffe.
``RECAFFE_MEMORY_LIMIT``       bytes a net may ask for (``64G``, ``512M``, a plain number, or ``off``).
                               Default: what this process can get: the least of physical memory +
                               swap, the cgroup's memory.max and RLIMIT_AS / RLIMIT_DATA. Parameters
                               (allocated when a net is built) must fit in the memory *available now*
                               (MemAvailable + free swap, the cgroup's headroom, the rlimit headroom);
                               parameters + one copy of every blob (a lower bound of what a forward
                               needs) must fit in the limit.

Every check raises the ``error`` class it is given (a RecaffeError subclass), never allocates, and
costs a few microseconds. This module imports nothing heavy (no torch, no numpy).
"""
import os
import resource
import stat

INT_MAX = 2 ** 31 - 1
MAX_BLOB_AXES = 32                     # kMaxBlobAxes, include/caffe/blob.hpp
PROTO_MAX_BYTES = INT_MAX              # kProtoReadBytesLimit, src/caffe/util/io.cpp
DEFAULT_IMAGE_PIXELS = 1 << 28
DEFAULT_PROTOTXT_BYTES = 16 << 20

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _env_int(name, default):
    """An integer limit from the environment (suffixes K/M/G/T, 'off' = no limit), else ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in ("off", "none", "0", "inf", "unlimited"):
        return None
    num, unit = raw.rstrip("bB").upper(), ""
    if num and num[-1] in _UNITS:
        num, unit = num[:-1], num[-1]
    try:
        value = int(float(num) * _UNITS[unit])
    except ValueError:
        from .errors import RecaffeError
        raise RecaffeError(f"environment {name}={raw!r}: expected a number of bytes/elements (suffix K, M, G, "
                           f"T allowed) or 'off'") from None
    return value if value > 0 else None


def max_blob_elements():
    return _env_int("RECAFFE_MAX_BLOB_ELEMENTS", INT_MAX)


def max_image_pixels():
    return _env_int("RECAFFE_MAX_IMAGE_PIXELS", DEFAULT_IMAGE_PIXELS)


def max_prototxt_bytes():
    return _env_int("RECAFFE_MAX_PROTOTXT_BYTES", DEFAULT_PROTOTXT_BYTES)


def human(n):
    """1536 -> '1.5 KiB'; for messages."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


# -- blobs -----------------------------------------------------------------------------------------
def blob_count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def check_blob(shape, where, error):
    """Blob::Reshape's checks on ``shape`` (axes <= 32, dims >= 0, elements <= the limit); returns the
    element count. ``where``: 'layer 'conv1' (Convolution): top 0' or similar."""
    shape = tuple(shape)
    if len(shape) > MAX_BLOB_AXES:
        raise error(f"{where}: blob of {len(shape)} axes; a blob has at most {MAX_BLOB_AXES} axes "
                    f"(Caffe's kMaxBlobAxes)")
    for d in shape:
        if int(d) < 0:
            raise error(f"{where}: blob shape {shape} has a negative dimension")
    n = blob_count(shape)
    limit = max_blob_elements()
    if limit is not None and n > limit:
        raise error(f"{where}: blob shape {shape} has {n} elements, over the limit of {limit} "
                    f"({'INT_MAX, as Caffe' if limit == INT_MAX else 'RECAFFE_MAX_BLOB_ELEMENTS'}; "
                    f"raise RECAFFE_MAX_BLOB_ELEMENTS to allow it)")
    return n


# -- memory ----------------------------------------------------------------------------------------
def _meminfo():
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _cgroup():
    """(memory.max, memory.current) of this process's cgroup v2 (None where unlimited/unknown)."""
    try:
        with open("/proc/self/cgroup") as f:
            rel = next((l.strip().split(":", 2)[2] for l in f if l.startswith("0::")), None)
        if rel is None:
            return None, None
        base = os.path.join("/sys/fs/cgroup", rel.lstrip("/"))
        with open(os.path.join(base, "memory.max")) as f:
            raw = f.read().strip()
        if raw == "max":
            return None, None
        with open(os.path.join(base, "memory.current")) as f:
            return int(raw), int(f.read().strip())
    except (OSError, ValueError, StopIteration, IndexError):
        return None, None


def _vm(field):
    """VmSize / VmData of this process in bytes (/proc/self/status), 0 when unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rlimits():
    """[(soft limit, /proc field it bounds)] for RLIMIT_AS (VmSize) and RLIMIT_DATA (VmData) when set."""
    out = []
    for which, field in ((resource.RLIMIT_AS, "VmSize"), (getattr(resource, "RLIMIT_DATA", None), "VmData")):
        if which is None:
            continue
        soft = resource.getrlimit(which)[0]
        if soft != resource.RLIM_INFINITY:
            out.append((soft, field))
    return out


def memory_limit():
    """(bytes this process may use at most, name of what sets it); (None, ..) when unknown/off."""
    if os.environ.get("RECAFFE_MEMORY_LIMIT", "").strip():
        return _env_int("RECAFFE_MEMORY_LIMIT", None), "RECAFFE_MEMORY_LIMIT"
    found = []
    info = _meminfo()
    if "MemTotal" in info:
        found.append((info["MemTotal"] + info.get("SwapTotal", 0), "physical memory + swap"))
    cg_max, _ = _cgroup()
    if cg_max is not None:
        found.append((cg_max, "the cgroup's memory.max"))
    found += [(r, "the process's rlimit") for r, _ in _rlimits()]
    return min(found) if found else (None, "")


def memory_available():
    """(bytes that can be allocated now, what sets it); (None, ..) when unknown/off."""
    if os.environ.get("RECAFFE_MEMORY_LIMIT", "").strip():
        return _env_int("RECAFFE_MEMORY_LIMIT", None), "RECAFFE_MEMORY_LIMIT"
    found = []
    info = _meminfo()
    if "MemAvailable" in info:
        found.append((info["MemAvailable"] + info.get("SwapFree", 0), "available memory"))
    cg_max, cg_cur = _cgroup()
    if cg_max is not None:
        found.append((max(0, cg_max - cg_cur), "the cgroup's free memory"))
    for soft, field in _rlimits():
        found.append((max(0, soft - _vm(field)), "the process's rlimit headroom"))
    return min(found) if found else (None, "")


def check_alloc(nbytes, where, error, now=True):
    """Refuse ``nbytes`` when it cannot be had: ``now`` against the memory available at this moment,
    else against the process's memory limit. ``where`` says what asks for it."""
    limit, what = memory_available() if now else memory_limit()
    if limit is not None and nbytes > limit:
        raise error(f"{where}: needs {human(nbytes)}, more than {what} ({human(limit)}); set "
                    f"RECAFFE_MEMORY_LIMIT (e.g. 64G, or off) to override")


class Budget:
    """What a net build asks for: ``param(nbytes, where)`` for each learnable blob (checked against the
    memory available now, cumulatively), ``blob(nbytes)`` for each distinct top blob; ``close(where)``
    checks parameters + blobs against the memory limit."""

    def __init__(self, error):
        self.error, self.params, self.blobs = error, 0, 0

    def param(self, nbytes, where):
        self.params += nbytes
        check_alloc(self.params, where + " (with the parameters before it)" if self.params > nbytes else where,
                    self.error)

    def blob(self, nbytes):
        self.blobs += nbytes

    def close(self, where):
        check_alloc(self.params + self.blobs, f"{where}: parameters {human(self.params)} + blobs "
                    f"{human(self.blobs)}", self.error, now=False)


_ACTIVE = []


def active_budget():
    """The Budget of the net being built in this thread (None outside a build)."""
    return _ACTIVE[-1] if _ACTIVE else None


class building:
    """``with limits.building(error) as budget:`` around a net build (nests; not thread-shared)."""

    def __init__(self, error):
        self.budget = Budget(error)

    def __enter__(self):
        _ACTIVE.append(self.budget)
        return self.budget

    def __exit__(self, *exc):
        _ACTIVE.remove(self.budget)
        return False


# -- images ----------------------------------------------------------------------------------------
def check_image_pixels(width, height, where, error):
    """Refuse an image of ``width`` x ``height`` over RECAFFE_MAX_IMAGE_PIXELS (before decoding it)."""
    limit = max_image_pixels()
    if limit is not None and int(width) * int(height) > limit:
        raise error(f"{where}: image of {width} x {height} = {int(width) * int(height)} pixels, over the "
                    f"limit of {limit} (RECAFFE_MAX_IMAGE_PIXELS; raise it to read this image)")


# -- files -----------------------------------------------------------------------------------------
def _sp(what):
    return " " + what if what else ""


def check_file(path, what, error, max_bytes=None, limit_name=""):
    """``os.stat`` of ``path`` (following links), refusing what is not a regular file (a device such
    as /dev/zero, a FIFO, a directory) or is larger than ``max_bytes``; returns the size. Nothing is
    opened, so a FIFO cannot block the caller."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise error(f"{path}: cannot read{_sp(what)}: {e.strerror}; expected an existing readable file") from None
    except ValueError:     # an embedded NUL byte
        raise error(f"{ascii(path)}: cannot read{_sp(what)}: a file name cannot contain a NUL byte") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a character device" if stat.S_ISCHR(st.st_mode)
                else "a block device" if stat.S_ISBLK(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise error(f"{path}: cannot read{_sp(what)}: {kind}; expected a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{path}: {what or 'file'} of {human(st.st_size)} is over the limit of {human(max_bytes)}"
                    + (f" ({limit_name})" if limit_name else ""))
    return st.st_size


def read_file(path, what, error, max_bytes=None, limit_name=""):
    """The bytes of a regular file of at most ``max_bytes`` (``check_file``), read once; the size is
    checked against the memory available first."""
    size = check_file(path, what, error, max_bytes, limit_name)
    check_alloc(size, f"{path}: reading{_sp(what)}", error)
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):   # replaced since the stat
                raise error(f"{path}: cannot read{_sp(what)}: not a regular file")
            data = f.read(size + 1)     # read(n) allocates n bytes up front: never more than the file
    except OSError as e:
        raise error(f"{path}: cannot read{_sp(what)}: {e.strerror}") from None
    if len(data) > size:
        raise error(f"{path}: cannot read{_sp(what)}: the file grew while being read")
    return data
