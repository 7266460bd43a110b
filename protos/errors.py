"""Exception types of recaffe. Every message says what was wrong, where, and what is valid."""


class RecaffeError(Exception):
    """Base class of every error recaffe raises on bad input."""


class ProtoError(RecaffeError):
    """A prototxt / binary proto file could not be read: message names file:line:col."""


class NetError(RecaffeError):
    """A net definition is inconsistent (unknown layer type, missing bottom, shape mismatch...)."""


class WeightsError(RecaffeError):
    """Weights do not fit the net (missing blob, shape mismatch)."""


class SolverError(RecaffeError):
    """A solver definition is invalid."""


class DataError(RecaffeError):
    """A data source (LMDB, image list, HDF5, mean file) is missing or malformed."""
