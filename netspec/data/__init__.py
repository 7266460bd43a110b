"""Data input as Caffe does it: Datum codec (datum), LMDB and LevelDB access (lmdb_io, leveldb_io),
image decoding and
resizing like OpenCV (image), list files and record sources (sources), mean files (meanfile), the
DataTransformer (transformer), batch feeding in workers (loader), and the work behind
convert_imageset / compute_image_mean (convert). The layers are in netspec/layers/data.py.

Names are imported lazily, so the tools do not pay for torch unless they need it.
"""
import importlib

_EXPORTS = {
    "array_to_datum": "datum", "datum_to_array": "datum", "parse_datum": "datum", "encoded_datum": "datum",
    "LMDBReader": "lmdb_io", "LMDBWriter": "lmdb_io", "LevelDBReader": "leveldb_io", "LevelDBWriter": "leveldb_io",
    "decode_image": "image", "read_image": "image", "resize": "image",
    "read_list": "sources", "LMDBSource": "sources", "ImageListSource": "sources",
    "read_mean": "meanfile", "write_mean": "meanfile",
    "DataTransformer": "transformer",
    "convert_imageset": "convert", "compute_image_mean": "convert",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
