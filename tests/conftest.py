"""Shared fixtures: small OME-Zarr stores written by hand with zarr-python."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import settings

# Property tests that do not fix their own number of examples take it from a profile:
# "suite" (the default, what CI runs) keeps the suite within its time budget; run
# HYPOTHESIS_PROFILE=thorough for a ten times longer search after changing what they test.
settings.register_profile("suite", max_examples=50)
settings.register_profile("thorough", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

METADATA_SUFFIXES = ("zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")


class KeyRecorder(logging.Handler):
    """Collects the keys a zarr ``LoggingStore`` was asked to ``get``."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.keys: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Calling" in message and ".get(" in message:
            self.keys.append(message.split(".get(", 1)[1].rstrip(")"))

    @property
    def chunk_keys(self) -> list[str]:
        """The keys read that are not metadata documents."""
        return [k for k in self.keys if not k.endswith(METADATA_SUFFIXES)]


def logging_store(store: zarr.abc.store.Store) -> tuple[zarr.storage.LoggingStore, KeyRecorder]:
    """``store`` wrapped in a LoggingStore, and what records the keys it reads."""
    recorder = KeyRecorder()
    logged = zarr.storage.LoggingStore(store)
    logged.logger.addHandler(recorder)
    logged.logger.propagate = False
    return logged, recorder


AXES = [
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]
SCALE = [1.0, 2.0, 0.5, 0.25]
TRANSLATION = [0.0, 10.0, -3.0, 1.5]
CHANNELS = ["DAPI", "GFP"]


def pixels(shape: tuple[int, ...] = (2, 5, 13, 11), seed: int = 0) -> np.ndarray:
    """Distinct uint16 pixels of a given shape."""
    return np.random.default_rng(seed).integers(0, 60000, shape, dtype=np.uint16)


def write_hand_image(path: Path, version: str, data: np.ndarray | None = None) -> np.ndarray:
    """A 2-level c/z/y/x image (level 1 strided by 2 in y and x) with omero channel names.

    Returns the level-0 pixels.
    """
    data = pixels() if data is None else data
    zarr_format = 3 if version == "0.5" else 2
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    datasets = []
    for i, level in enumerate([data, data[:, :, ::2, ::2]]):
        kwargs = {"dimension_names": [a["name"] for a in AXES]} if zarr_format == 3 else {}
        arr = root.create_array(
            str(i), shape=level.shape, dtype=level.dtype, chunks=(1, 2, 5, 4), **kwargs
        )
        arr[...] = level
        f = 2**i
        scale = [SCALE[0], SCALE[1], SCALE[2] * f, SCALE[3] * f]
        translation = [
            TRANSLATION[0],
            TRANSLATION[1],
            TRANSLATION[2] + (f - 1) / 2 * SCALE[2],
            TRANSLATION[3] + (f - 1) / 2 * SCALE[3],
        ]
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": translation},
                ],
            }
        )
    multiscale = {"name": "cells", "axes": AXES, "datasets": datasets}
    omero = {
        "channels": [
            {
                "label": n,
                "color": "FF0000",
                "active": True,
                "window": {"start": 0, "end": 1000, "min": 0, "max": 65535},
            }
            for n in CHANNELS
        ],
        "rdefs": {"model": "color"},
    }
    if version == "0.5":
        root.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [multiscale],
            "omero": omero,
            "x-custom": {"keep": 1},
        }
    else:
        multiscale["version"] = version
        root.attrs.update({"multiscales": [multiscale], "omero": omero, "x-custom": {"keep": 1}})
    return data


@pytest.fixture(params=["0.4", "0.5"])
def hand_image(request, tmp_path) -> tuple[Path, np.ndarray, str]:
    """(path, level-0 pixels, version) of a hand-written 2-level image."""
    path = tmp_path / f"hand-{request.param}.ome.zarr"
    data = write_hand_image(path, request.param)
    return path, data, request.param
