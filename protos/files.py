"""The one atomic file writer of recaffe: every file the project writes (prototxt, .caffemodel, .pth,
.h5, .solverstate, .binaryproto) goes through ``atomic_write``, so a reader never sees half a file and
a failed write (missing folder, no permission, full disk, an interrupt) leaves the earlier file as it
was."""
import os
import tempfile

from .errors import ProtoError


def atomic_write(path, write, error=ProtoError):
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path``. ``write`` may
    also be bytes, written as they are. The file keeps the mode of the one it replaces, else gets what
    a plain open() would give (not mkstemp's 0600). An OSError becomes one line of ``error`` naming
    ``path``; with error None it propagates as it is."""
    path = os.fspath(path)
    if "\0" in str(path) and error is not None:
        raise error(f"{ascii(path)}: cannot write: a file name cannot contain a NUL byte")
    if isinstance(write, (bytes, bytearray, memoryview)):
        data = write

        def write(tmp):
            with open(tmp, "wb") as f:
                f.write(data)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)
        write(tmp)
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o777
        else:
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and error is not None:
            shown = path if path.isprintable() else ascii(path)     # one line, even for a name with a newline
            raise error(f"{shown}: cannot write: {e.strerror or e}") from None
        raise
