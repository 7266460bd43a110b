"""LevelDB access as Caffe uses it (src/caffe/util/db_leveldb.cpp), through plyvel (the ``leveldb``
extra: ``pip install recaffe[leveldb]``).

Reading: records in key order (LevelDB's byte-wise comparator, the order Caffe's cursor walks from
SeekToFirst); keys listed once when a reader is made. LevelDB lets one process open a database at a
time (its LOCK file), so a reader holds one handle per process, opened lazily, and data layers read
a LevelDB from threads of the process that opened it (``process_safe`` False), never from forked
workers. Caffe's reader also opens the database for writing; so does this one.

Writing (``LevelDBWriter``): Caffe's options for a NEW database (block_size 64 KiB, write buffer 256
MiB, max_open_files 100, error if it exists) and a write batch committed every ``commit_every`` puts,
as convert_imageset; the database is built in a temporary directory next to the target and renamed
into place when complete, so a failure never leaves a half-written database at the target path.
"""
import contextlib
import os
import threading

from recaffe.protos.errors import DataError

from .lmdb_io import StagedDatabase

EXTRA_HINT = "LevelDB needs the plyvel package: pip install 'recaffe[leveldb]' (or: pip install plyvel)"


def plyvel():
    try:
        import plyvel as module
    except ImportError:
        raise DataError(EXTRA_HINT) from None
    return module


def is_leveldb(path):
    """A LevelDB directory: it holds a CURRENT file (LevelDB's pointer to its manifest)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "CURRENT"))


_DBS = {}
_LOCK = threading.Lock()


def _shared_db(path):
    """One handle per (database, process), shared by the readers of this process."""
    key = (os.path.realpath(path), os.getpid())
    with _LOCK:
        db = _DBS.get(key)
        if db is None:
            module = plyvel()
            for k in [k for k in _DBS if k[0] == key[0] and k[1] != key[1]]:
                _DBS.pop(k)      # inherited through fork: unusable here, and closing it would unlock the parent
            try:
                db = module.DB(path, create_if_missing=False)
            except module.Error as e:
                raise DataError(f"{path}: cannot open LevelDB database: {e}") from None
            except OSError as e:
                raise DataError(f"{path}: cannot open LevelDB database: {e} (another process has it open? "
                                "LevelDB allows one)") from None
            _DBS[key] = db
    return db


class LevelDBReader:
    """Read-only view of a LevelDB: ``len(r)``, ``r.keys``, ``r.get(i)`` (i-th record's value); the same
    interface as lmdb_io.LMDBReader."""
    process_safe = False

    def __init__(self, path):
        self.path = str(path)
        if not os.path.exists(self.path):
            raise DataError(f"{self.path}: LevelDB database does not exist")
        if not is_leveldb(self.path):
            raise DataError(f"{self.path}: not a LevelDB database (no CURRENT file in the directory)")
        self.keys = list(self._db().iterator(include_value=False))
        if not self.keys:
            raise DataError(f"{self.path}: LevelDB database is empty")

    def _db(self):
        return _shared_db(self.path)

    def __len__(self):
        return len(self.keys)

    def get(self, i):
        key = self.keys[i]
        value = self._db().get(key)
        if value is None:
            raise DataError(f"{self.path}: key {key.decode(errors='replace')!r} disappeared from the database")
        return value

    def get_many(self, indices):
        """Values of several records from one snapshot (one batch)."""
        snap = self._db().snapshot()
        try:
            out = []
            for i in indices:
                value = snap.get(self.keys[i])
                if value is None:
                    raise DataError(f"{self.path}: key {self.keys[i].decode(errors='replace')!r} disappeared")
                out.append(value)
            return out
        finally:
            snap.close()

    @contextlib.contextmanager
    def buffers(self, indices):
        """The values of several records (bytes: LevelDB has no memory map to view)."""
        yield self.get_many(indices)

    def items(self, buffers=False):
        """(key, value) in key order."""
        yield from self._db().iterator()

    def close(self):
        """Close this process's handle of the database (other readers of it reopen on use)."""
        with _LOCK:
            db = _DBS.pop((os.path.realpath(self.path), os.getpid()), None)
        if db is not None:
            db.close()


class LevelDBWriter(StagedDatabase):
    """Context manager writing ``put(key, value)`` pairs into a new LevelDB at ``path``, atomically."""

    @staticmethod
    def check_available():
        plyvel()

    def __init__(self, path, commit_every=1000):
        module = plyvel()
        self._stage(path)
        os.rmdir(self.tmp)        # LevelDB creates the directory itself (error_if_exists)
        self.db = module.DB(self.tmp, create_if_missing=True, error_if_exists=True, block_size=65536,
                            write_buffer_size=268435456, max_open_files=100)
        self.commit_every = commit_every
        self.count = 0
        self.batch = self.db.write_batch()

    def put(self, key, value):
        if isinstance(key, str):
            key = key.encode()
        self.batch.put(key, bytes(value))
        self.count += 1
        if self.count % self.commit_every == 0:
            self.batch.write()
            self.batch = self.db.write_batch()

    def commit(self):
        self.batch.write()
        self.batch = None
        self.db.close()
        self._publish()

    def abort(self):
        self.batch = None
        self.db.close()
        self._discard()
