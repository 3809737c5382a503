"""A lazy xarray backend array over one zarr array."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import zarr
from xarray.backends.common import BackendArray
from xarray.core import indexing

from .direct_read import ChunkReadError, DirectReader
from .errors import OmeZarrError
from .remote_read import StoreReader


class OmeZarrArray(BackendArray):
    """Index a zarr array the way xarray asks: basic, outer and vectorized.

    Holds no open file handle and pickles as the ``zarr.Array`` it wraps, so dask can ship
    it to other processes. Basic selections of a local array are read from the chunk (or
    shard) files directly (:mod:`.direct_read`), those of a remote unsharded one with fetches
    and decodes overlapped (:mod:`.remote_read`); everything else goes through zarr.
    """

    __slots__ = ("_array", "_direct", "dtype", "shape", "_where")

    def __init__(self, array: zarr.Array, where: str, shape: tuple[int, ...] | None = None) -> None:
        self._array = array
        # a level read trimmed (rule uneven-levels) shows its first ``shape`` pixels only
        self.shape = tuple(array.shape) if shape is None else tuple(shape)
        self.dtype = np.dtype(array.dtype)
        self._where = where
        self._direct: DirectReader | StoreReader | None | bool = False  # found at first read

    def direct(self) -> DirectReader | StoreReader | None:
        """The chunk reader of the array (local files or a remote store's async gets), or
        ``None`` where zarr reads; found at the first read: a plate opens thousands of
        arrays and reads few."""
        if self._direct is False:
            self._direct = DirectReader.of(self._array) or StoreReader.of(self._array)
        return self._direct  # type: ignore[return-value]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._array, self._where, self.shape))

    def get_array(self) -> zarr.Array:
        """The wrapped zarr array."""
        return self._array

    def _read(self, method: Any, key: tuple) -> np.ndarray:
        try:
            return np.asarray(method[key] if method is not None else self._array[key])
        except (IndexError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as err:
            raise self._failure(f"{type(err).__name__}: {err}") from err

    def _failure(self, detail: str) -> OmeZarrError:
        return OmeZarrError(f"{self._where}: cannot read array {self._array.path!r} ({detail})")

    def _basic(self, key: tuple) -> np.ndarray:
        direct = self.direct()
        if direct is not None:
            try:
                values = direct.read(key, self.dtype)
            except ChunkReadError as err:
                raise self._failure(str(err)) from err
            if values is not None:
                return values
        return self._read(None, key)

    def _outer(self, key: tuple) -> np.ndarray:
        return self._read(self._array.oindex, key)

    def _vectorized(self, key: tuple) -> np.ndarray:
        return self._read(self._array.vindex, key)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        if isinstance(key, indexing.VectorizedIndexer):
            method = self._vectorized
        elif isinstance(key, indexing.OuterIndexer):
            method = self._outer
        else:
            method = self._basic
        if self.shape != tuple(self._array.shape):  # trimmed: keys within the shape read
            method = functools.partial(_within, method, self.shape)
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.VECTORIZED, method
        )


def _within(method: Any, shape: tuple[int, ...], key: tuple) -> np.ndarray:
    """Call ``method`` with ``key`` resolved against ``shape`` (not the array's own):
    open slices end there and negative indices count from there."""
    bounded: list[Any] = []
    for k, n in zip(key, shape, strict=False):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            bounded.append(slice(start, None if stop < 0 else stop, step))
        elif isinstance(k, np.ndarray) and k.dtype.kind in "iu":
            bounded.append(np.where(k < 0, k + n, k))
        elif isinstance(k, int | np.integer) and k < 0:
            bounded.append(int(k) + n)
        else:
            bounded.append(k)
    return method(tuple(bounded))  # type: ignore[no-any-return]
