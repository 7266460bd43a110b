"""LMDB access as Caffe uses it (src/caffe/util/db_lmdb.cpp).

Reading: records in key order (LMDB's byte-wise order, what Caffe's cursor walks), the environment
opened read-only, without locking and without readahead, so that any number of worker processes can
read it at once; a process opens its own handle lazily (handles must not cross ``fork``). The keys
are listed once when a reader is made (random access by record index, any worker; about a second and
~100 bytes per record for an ImageNet-sized database).

Writing (``LMDBWriter``): the database is built in a temporary directory next to the target and
renamed into place when complete, so a failure or an interrupt never leaves a half-written database
at the target path. Transactions are committed every ``commit_every`` records, as Caffe's tools do.
"""
import contextlib
import os
import shutil
import tempfile

import lmdb

from recaffe.protos.errors import DataError

def check_lmdb_path(path):
    if not os.path.exists(path):
        raise DataError(f"{path}: LMDB database does not exist")
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "data.mdb")):
            if os.path.exists(os.path.join(path, "CURRENT")):
                raise DataError(f"{path}: this is a LevelDB database, not an LMDB (use --backend leveldb)")
            raise DataError(f"{path}: not an LMDB database (no data.mdb in the directory)")


_ENVS = {}


def _shared_env(path):
    """One read-only environment per (database, process): py-lmdb refuses a second open of the same
    environment in a process, and a handle inherited through fork must not be used."""
    key = (os.path.realpath(path), os.getpid())
    env = _ENVS.get(key)
    if env is None:
        for k in [k for k in _ENVS if k[0] == key[0] and k[1] != key[1]]:
            _ENVS.pop(k).close()   # inherited through fork: py-lmdb refuses a new open until closed
        try:
            env = lmdb.open(path, readonly=True, lock=False, readahead=False,
                            subdir=os.path.isdir(path), max_readers=512)
        except lmdb.Error as e:
            raise DataError(f"{path}: cannot open LMDB database: {e}") from None
        _ENVS[key] = env
    return env


class LMDBReader:
    """Read-only, fork-safe view of an LMDB: ``len(r)``, ``r.keys``, ``r.get(i)`` (i-th record's value)."""

    def __init__(self, path):
        self.path = str(path)
        check_lmdb_path(self.path)
        self._env, self._pid = None, None
        with self._open().begin(buffers=False) as txn:
            self.keys = [k for k in txn.cursor().iternext(keys=True, values=False)]
        if not self.keys:
            raise DataError(f"{self.path}: LMDB database is empty")

    def _open(self):
        if self._env is None or self._pid != os.getpid():
            self._env, self._pid = _shared_env(self.path), os.getpid()
        return self._env

    def __len__(self):
        return len(self.keys)

    def __getstate__(self):  # the environment handle stays behind; workers reopen
        st = dict(self.__dict__)
        st["_env"] = st["_pid"] = None
        return st

    def get(self, i):
        key = self.keys[i]
        try:
            with self._open().begin(buffers=False) as txn:
                value = txn.get(key)
        except lmdb.Error as e:
            raise DataError(f"{self.path}: key {key.decode(errors='replace')!r}: read failed: {e}") from None
        if value is None:
            raise DataError(f"{self.path}: key {key.decode(errors='replace')!r} disappeared from the database")
        return value

    def _values(self, txn, indices):
        out = []
        for i in indices:
            value = txn.get(self.keys[i])
            if value is None:
                raise DataError(f"{self.path}: key {self.keys[i].decode(errors='replace')!r} disappeared")
            out.append(value)
        return out

    def get_many(self, indices):
        """Values of several records in one read transaction (one batch)."""
        with self._open().begin(buffers=False) as txn:
            return self._values(txn, indices)

    @contextlib.contextmanager
    def buffers(self, indices):
        """Zero-copy values of several records (memoryviews into the memory map), valid only inside
        the ``with`` block (one read transaction)."""
        with self._open().begin(buffers=True) as txn:
            yield self._values(txn, indices)

    def items(self, buffers=False):
        """(key, value) in key order; buffers=True: values are memoryviews into the memory map, each
        valid until the generator moves on or closes (use it at once)."""
        with self._open().begin(buffers=buffers) as txn:
            yield from txn.cursor().iternext(keys=True, values=True)

    def close(self):
        """Forget this reader's handle (the environment stays open for other readers of the file)."""
        self._env = None


class StagedDatabase:
    """What the LMDB and LevelDB writers share: the database is written into a hidden folder beside
    ``path`` and renamed to ``path`` on commit (a reader never sees half a database; an error or an
    interrupt removes the folder); used as a context manager (commit on success, abort on error)."""

    def _stage(self, path):
        self.path = os.path.abspath(str(path))
        if os.path.exists(self.path):
            raise DataError(f"{self.path}: already exists; remove it or choose another DB_NAME")
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise DataError(f"{self.path}: parent directory {parent} does not exist")
        self.tmp = tempfile.mkdtemp(prefix="." + os.path.basename(self.path) + ".tmp-", dir=parent)

    def _publish(self):
        os.chmod(self.tmp, 0o755)
        os.rename(self.tmp, self.path)

    def _discard(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


class LMDBWriter(StagedDatabase):
    """Context manager writing ``put(key, value)`` pairs into a new LMDB at ``path``, atomically."""

    def __init__(self, path, commit_every=1000, map_size=1 << 40):
        self._stage(path)
        self.env = lmdb.open(self.tmp, map_size=map_size, subdir=True, meminit=False, sync=False)
        self.commit_every = commit_every
        self.count = 0
        self.txn = self.env.begin(write=True)

    def put(self, key, value):
        if isinstance(key, str):
            key = key.encode()
        self.txn.put(key, value)
        self.count += 1
        if self.count % self.commit_every == 0:
            self.txn.commit()
            self.txn = self.env.begin(write=True)

    def commit(self):
        self.txn.commit()
        self.txn = None
        self.env.sync(True)
        self.env.close()
        try:
            os.unlink(os.path.join(self.tmp, "lock.mdb"))
        except OSError:
            pass
        self._publish()

    def abort(self):
        if self.txn is not None:
            self.txn.abort()
            self.txn = None
        self.env.close()
        self._discard()
