"""The garbage collector paused while an open builds its objects, and restored after."""

from __future__ import annotations

import gc
import threading

import pytest

from xarray_ome_zarr.collector import collection_paused, without_collection


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_restored_after_even_on_error(collector_on):
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():  # nested: the inner end does not restore it
            pass
        assert not gc.isenabled()
    assert gc.isenabled()

    @without_collection
    def fails() -> None:
        assert not gc.isenabled()
        raise KeyError("x")

    with pytest.raises(KeyError):
        fails()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on):
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()


def test_concurrent_opens_restore_it_when_the_last_ends(collector_on):
    inside, leave = threading.Event(), threading.Event()

    def other_open() -> None:
        with collection_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other_open)
    with collection_paused():
        thread.start()
        inside.wait(10)
    assert not gc.isenabled()  # the other open is still under way
    leave.set()
    thread.join()
    assert gc.isenabled()
