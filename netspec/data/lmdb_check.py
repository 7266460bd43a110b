"""Checking an LMDB's pages before liblmdb reads them, and listing its keys while doing so.

liblmdb trusts its file: a page of the wrong type aborts the process (``mdb_cassert``, e.g.
"Assertion 'IS_LEAF(mp)' failed in mdb_cursor_next()"), a record size flipped to gigabytes hands out
a buffer running past the map (SIGSEGV / SIGBUS when read), a file shorter than its meta page says
faults on the first read past its end. Caffe's tools die the same way. So before recaffe lets
liblmdb walk a database, this module walks it itself, over a read-only mapping of a file whose size
has been checked, and refuses anything liblmdb could trip on, naming the database and the page.

What is checked (liblmdb 0.9 on-disk format, lmdb.h / mdb.c: MDB_meta, MDB_page, MDB_node):

* the meta pages (0 and 1): magic, version; liblmdb uses the one with the larger txnid; its page size
  and last page; the file must hold every page up to that last page;
* the main database's B-tree from its root, depth first (the key order of a cursor): every page number
  in 2..last page and equal to the page's own number, a branch page at every level above the leaves
  with at least 2 children, leaf pages at exactly the recorded depth (<= 32, liblmdb's cursor
  stack) with at least one record (an empty root leaf is an empty database), node offsets inside the
  page and above its free space, key sizes up to 511 bytes, inline records inside their page,
  records on overflow pages inside the file, no duplicate-sort or sub-database records (Caffe never
  writes them), and no page visited twice.

Cost: one pass over the branch and leaf pages (not the record data on overflow pages), vectorised
per page: the keys come out of the same pass, so opening a database costs what listing its keys with
a cursor did.
"""
import mmap
import os
import struct

import numpy as np

from recaffe.protos.errors import DataError

MAGIC, VERSION = 0xBEEFC0DE, 1
PAGEHDRSZ, NODESIZE = 16, 8
P_BRANCH, P_LEAF, P_OVERFLOW, P_META, P_LEAF2, P_SUBP = 0x01, 0x02, 0x04, 0x08, 0x20, 0x40
F_BIGDATA, F_SUBDATA, F_DUPDATA = 0x01, 0x02, 0x04
P_INVALID = 2 ** 64 - 1
MAX_DEPTH, MAX_KEY = 32, 511
_EIGHT = np.arange(8)
_META = struct.Struct("<II8xQ48xIHHQQQQQQQ")   # magic, version, mapsize, main db (pad, flags, depth, ...), last, txnid


class _Damaged(Exception):
    pass


def _meta(buf, off):
    """(psize, flags, depth, entries, root, last_pg, txnid) of the meta page at ``off``."""
    if off + PAGEHDRSZ + _META.size > len(buf):
        raise _Damaged(f"meta page at byte {off} is cut off")
    flags = struct.unpack_from("<H", buf, off + 10)[0]
    if not flags & P_META:
        raise _Damaged(f"page at byte {off} is not a meta page")
    magic, version, _, _, dflags, depth, _, _, _, entries, root, last, txnid = _META.unpack_from(buf, off + PAGEHDRSZ)
    if magic != MAGIC:
        raise _Damaged(f"not an LMDB file (magic {magic:#x} at byte {off + PAGEHDRSZ})")
    if version != VERSION:
        raise _Damaged(f"LMDB data format version {version}; this liblmdb reads version {VERSION}")
    psize = struct.unpack_from("<I", buf, off + PAGEHDRSZ + 24)[0]    # mm_dbs[FREE_DBI].md_pad
    return psize, dflags, depth, entries, root, last, txnid


def read_keys(data_file, label=None):
    """The keys of the main database of ``data_file`` in cursor order, after checking every page on the
    way (see the module docstring); a DataError naming ``label`` (the database) otherwise."""
    label = label or data_file
    problem = None
    try:
        with open(data_file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 2 * PAGEHDRSZ + 2 * _META.size:
                raise _Damaged(f"{data_file} has {size} bytes, too few for LMDB's two meta pages")
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)   # unmapped when the views are gone
        return _walk(m, size, data_file)
    except _Damaged as e:
        problem = f"damaged LMDB database: {e}; copy or rebuild it"
    except (OSError, ValueError) as e:
        problem = f"cannot read LMDB database: {e}"
    raise DataError(f"{label}: {problem}")


def _walk(m, size, data_file):
    psize0 = _meta(m, 0)[0]
    if psize0 < 512 or psize0 & (psize0 - 1) or psize0 > 1 << 16:
        raise _Damaged(f"page size {psize0} in the first meta page")
    metas = [_meta(m, 0), _meta(m, psize0)]
    psize, dflags, depth, entries, root, last, _ = max(metas, key=lambda x: x[6])
    if psize != psize0:
        raise _Damaged(f"the meta pages disagree on the page size ({psize0}, {psize})")
    if dflags & 0x7E:        # MDB_REVERSEKEY, DUPSORT, INTEGERKEY, DUPFIXED, INTEGERDUP, REVERSEDUP
        raise _Damaged(f"main database flags {dflags:#x}: not a plain key/value database as Caffe writes")
    pages = last + 1
    if pages * psize > size:
        raise _Damaged(f"{data_file} has {size} bytes but its meta page says the data runs to page {last} "
                       f"({pages * psize} bytes of {psize}-byte pages): a truncated copy?")
    if root == P_INVALID:
        return []
    if depth < 1 or depth > MAX_DEPTH:
        raise _Damaged(f"tree depth {depth}")
    buf = np.frombuffer(m, np.uint8, count=pages * psize)
    keys, seen = [], set()

    def page(pgno, level, parent):
        if not 2 <= pgno <= last or pgno in seen:
            raise _Damaged(f"page {parent} points to page {pgno} ({'seen before' if pgno in seen else 'out of range'})")
        seen.add(pgno)
        base = pgno * psize
        own, _, flags, lower, upper = struct.unpack_from("<QHHHH", m, base)
        if own != pgno:
            raise _Damaged(f"page {pgno} says it is page {own}")
        leaf = level == depth
        want = P_LEAF if leaf else P_BRANCH
        if flags & (P_BRANCH | P_LEAF | P_OVERFLOW | P_META | P_LEAF2 | P_SUBP) != want:
            raise _Damaged(f"page {pgno} has flags {flags:#x}, a {'leaf' if leaf else 'branch'} page expected "
                           f"at depth {level} of {depth}")
        if lower < PAGEHDRSZ or lower > upper or upper > psize or (lower - PAGEHDRSZ) % 2:
            raise _Damaged(f"page {pgno}: free space bounds {lower}..{upper}")
        n = (lower - PAGEHDRSZ) // 2
        if n < (1 if leaf else 2) and not (leaf and level == 1 and n == 0):
            raise _Damaged(f"page {pgno}: {n} node(s)")
        p = buf[base:base + psize]
        ptrs = p[PAGEHDRSZ:lower].view("<u2").astype(np.int64)
        if n and (ptrs.min() < upper or ptrs.max() > psize - NODESIZE):
            raise _Damaged(f"page {pgno}: a node offset outside {upper}..{psize - NODESIZE}")
        heads = np.ascontiguousarray(p[ptrs[:, None] + _EIGHT]).view("<u2").astype(np.int64)   # MDB_node
        lo, hi, fl, ks = heads[:, 0], heads[:, 1], heads[:, 2], heads[:, 3]
        if n and ks.max() > MAX_KEY:
            raise _Damaged(f"page {pgno}: a key of {int(ks.max())} bytes (at most {MAX_KEY})")
        end = ptrs + NODESIZE + ks
        if not leaf:
            if n and end.max() > psize:
                raise _Damaged(f"page {pgno}: a key runs past the page")
            for child in (lo | hi << 16 | fl << 32).tolist():
                page(child, level + 1, pgno)
            return
        if n and (fl & (F_SUBDATA | F_DUPDATA)).any():
            raise _Damaged(f"page {pgno}: sub-database or duplicate records, which Caffe never writes")
        dsize = lo | hi << 16
        big = (fl & F_BIGDATA) != 0
        data_end = end + np.where(big, 8, dsize)
        if n and data_end.max() > psize:
            raise _Damaged(f"page {pgno}: a record runs past the page")
        if big.any():
            ovf = np.ascontiguousarray(p[end[big][:, None] + _EIGHT]).view("<u8")[:, 0].astype(np.float64)
            need = np.ceil((PAGEHDRSZ + dsize[big]) / psize)
            if (ovf < 2).any() or (ovf + need > pages).any():
                raise _Damaged(f"page {pgno}: a record's overflow pages lie outside the file")
        pb = m[base:base + psize]
        keys.extend([pb[s:s + k] for s, k in zip((ptrs + NODESIZE).tolist(), ks.tolist())])
    page(root, 1, "meta")
    if len(keys) != entries:
        raise _Damaged(f"{len(keys)} records in the tree, the meta page says {entries}")
    return keys
