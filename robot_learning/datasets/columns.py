"""Arrow column types of a data file, and conversion between numpy frame arrays and arrow.

The types are the ones Hugging Face ``datasets`` writes for LeRobot's features (LeRobot reads data
files with ``datasets``): shape ``(1,)`` -> a plain scalar column (``Value``), shape ``(n,)`` -> a
``fixed_size_list<dtype>[n]`` (``Sequence(length=n)``), ``image`` -> ``struct<bytes, path>`` holding
PNG bytes (``Image``), ``string`` -> ``string``; ``video`` features have no column. Features with
two or more dimensions are stored as nested fixed-size lists (LeRobot would use its ``Array2D``
extension type there; only 0-D/1-D features are LeRobot-interchangeable).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from robot_learning.features import Feature, FeatureSpec

_SCALAR_TYPES = {
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "uint8": pa.uint8(),
    "bool": pa.bool_(),
}
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def has_column(feature: Feature) -> bool:
    """Whether a feature is stored in the data parquet files (videos live in mp4 files)."""
    return feature.dtype != "video"


def arrow_type(feature: Feature) -> pa.DataType:
    """The arrow type of a feature's column."""
    if feature.dtype == "image":
        return IMAGE_STRUCT
    if feature.dtype == "string":
        return pa.string()
    typ = _SCALAR_TYPES[feature.dtype]
    if feature.shape in ((), (1,)):
        return typ
    for size in reversed(feature.shape):
        typ = pa.list_(typ, size)
    return typ


def _hf_feature(feature: Feature) -> dict[str, Any]:
    if feature.dtype == "image":
        return {"_type": "Image"}
    if feature.dtype == "string" or feature.shape in ((), (1,)):
        return {"dtype": feature.dtype, "_type": "Value"}
    inner: dict[str, Any] = {"dtype": feature.dtype, "_type": "Value"}
    for size in reversed(feature.shape):
        inner = {"feature": inner, "length": size, "_type": "Sequence"}
    return inner


def data_schema(features: FeatureSpec) -> pa.Schema:
    """Schema of a data file for ``features`` (user + bookkeeping, in info.json order).

    Carries the ``huggingface`` schema metadata ``datasets`` writes, so a plain
    ``datasets.load_dataset("parquet", ...)`` also sees the right feature types.
    """
    fields = [pa.field(k, arrow_type(f)) for k, f in features.items() if has_column(f)]
    hf = {"info": {"features": {k: _hf_feature(f) for k, f in features.items() if has_column(f)}}}
    return pa.schema(fields, metadata={b"huggingface": json.dumps(hf).encode()})


def types_compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Equal types, also accepting a variable-size list where a fixed-size one is expected
    (older ``datasets`` versions wrote ``Sequence(length=n)`` that way)."""
    if actual == expected:
        return True
    if pa.types.is_fixed_size_list(expected) and (
        pa.types.is_list(actual) or pa.types.is_large_list(actual)
    ):
        return types_compatible(actual.value_type, expected.value_type)
    return False


def encode_png(frame: np.ndarray) -> bytes:
    """PNG bytes of one HWC uint8 frame (fast compression, like LeRobot's image writer)."""
    img = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode_png`, shaped ``(H, W, C)``."""
    arr = np.asarray(Image.open(io.BytesIO(data)))
    return arr.reshape(shape)


def to_arrow(values: Any, feature: Feature) -> pa.Array:
    """One column from a ``[T, *shape]`` array (or a list of PNG bytes / strings)."""
    typ = arrow_type(feature)
    if feature.dtype == "image":
        return pa.array([{"bytes": b, "path": None} for b in values], type=IMAGE_STRUCT)
    if feature.dtype == "string":
        return pa.array([str(v) for v in values], type=typ)
    arr = np.ascontiguousarray(values, dtype=feature.numpy_dtype)
    num = arr.shape[0]
    if feature.shape in ((), (1,)):
        return pa.array(arr.reshape(num), type=typ)
    out: pa.Array = pa.array(arr.reshape(-1), type=_SCALAR_TYPES[feature.dtype])
    for size in reversed(feature.shape):
        out = pa.FixedSizeListArray.from_arrays(out, size)
    return out


def build_table(columns: Mapping[str, Any], features: FeatureSpec) -> pa.Table:
    """A data-file table from per-feature frame arrays (every non-video feature required)."""
    schema = data_schema(features)
    arrays = [to_arrow(columns[f.name], features[f.name]) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def to_numpy(
    column: pa.ChunkedArray | pa.Array, feature: Feature, squeeze: bool = False
) -> np.ndarray:
    """A ``[T, *shape]`` array from a column (``[T]`` when ``squeeze`` and shape is ``(1,)``)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    num = len(arr)
    if feature.dtype == "image":
        data = arr.field("bytes").to_pylist()
        out = np.empty((num, *feature.shape), dtype=np.uint8)
        for i, png in enumerate(data):
            out[i] = decode_png(png, feature.shape)
        return out
    if feature.dtype == "string":
        return np.array(arr.to_pylist(), dtype=str)
    while (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
    ):
        arr = arr.flatten()
    flat = arr.to_numpy(zero_copy_only=False).astype(feature.numpy_dtype, copy=False)
    if squeeze and feature.shape in ((), (1,)):
        return flat.reshape(num)
    return flat.reshape(num, *feature.shape)
