"""numpy columns as Arrow arrays, built from their buffers, for the run folder's tables.

``pa.array(ndarray)`` first asks pandas whether the array is one of its
types, and to answer pyarrow imports pandas: about 0.4 s of Python, the
largest single cost of writing a 590,000-citizen run folder after the
encoding itself. The arrays here are the ones ``pa.array`` builds (same type,
values, validity and null count, so the Parquet files are byte-identical),
put together from the numpy buffers with ``pa.Array.from_buffers``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa


def column(values: np.ndarray | pa.Array, null: np.ndarray | None = None) -> pa.Array:
    """A one-dimensional numeric or boolean numpy array as an Arrow array (``pa.array(values, mask=null)``).

    ``null`` (optional, boolean) marks the entries stored as nulls.
    """
    if isinstance(values, pa.Array):
        return values
    values = np.ascontiguousarray(values)
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise TypeError(f"a column is a 1-d numeric or boolean array, not {values.ndim}-d {values.dtype}")
    if not values.dtype.isnative:  # Arrow buffers hold native byte order
        values = values.astype(values.dtype.newbyteorder("="))
    validity, nulls = None, 0
    if null is not None:
        nulls = int(np.count_nonzero(null))
        validity = _bits(~np.asarray(null, dtype=bool)) if nulls else None
    if values.dtype == np.bool_:
        data = _bits(values)
        kind = pa.bool_()
    else:
        data = pa.py_buffer(values)
        kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, values.size, [validity, data], null_count=nulls)


def categorical(codes: np.ndarray, names: Sequence[str]) -> pa.DictionaryArray:
    """Codes into ``names`` as a dictionary array with int32 indices and string values."""
    return pa.DictionaryArray.from_arrays(column(codes.astype(np.int32)), strings(names))


def strings(names: Sequence[str]) -> pa.Array:
    """Python strings as an Arrow string array (``pa.array(names, pa.string())``)."""
    encoded = [name.encode("utf-8") for name in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(encoded), buffers)


def table(columns: Mapping[str, np.ndarray | pa.Array]) -> pa.Table:
    """An Arrow table of named columns, numpy ones converted by :func:`column`."""
    return pa.table({name: column(values) for name, values in columns.items()})


def _bits(flags: np.ndarray) -> pa.Buffer:
    """Booleans as an Arrow bitmap (least significant bit first)."""
    return pa.py_buffer(np.packbits(flags, bitorder="little"))
