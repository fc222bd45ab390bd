"""Fuzzing the catalog reader and the image opener with mutated valid files.

Random byte changes, insertions, deletions and truncations of a valid catalog and of valid
exposure files (plain and tile-compressed) from the bad-input corpus: every input is refused
with a :class:`~alertprod.errors.ContractError` or read — never another exception type (which
would send the message to the dead-letter queue unexplained) — and each within a bounded time.
Mutations land in the headers more often than in the pixels, where most of the parsing is.
"""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertprod.errors import ContractError
from alertprod.formats import ExposureFile
from alertprod.formats._fits_layout import data_bytes
from alertprod.ingest import REASONS, validate_catalog

CORPUS = Path(__file__).resolve().parents[2] / "data" / "bad_inputs"
KEY = "diasources/00000001/000.fits"
CATALOG = (CORPUS / "good" / "catalog.fits").read_bytes()
IMAGES = {"plain": (CORPUS / "good" / "difference.fits").read_bytes(),
          "compressed": (CORPUS / "images" / "difference_tile_compressed.fits").read_bytes()}
#: Longest a single input may take to be refused or read, seconds (they take milliseconds).
MAX_SECONDS = 5.0
HEADERS_BYTES = 4 * 2880

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` with 1–8 edits: byte overwrites, insertions, deletions; maybe cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.one_of(st.integers(0, HEADERS_BYTES - 1), st.integers(0, len(out) - 1)))
        where = min(where, max(len(out) - 1, 0))
        op = draw(st.sampled_from(["set", "set", "set", "insert", "delete", "ascii"]))
        if op == "set":
            out[where] = draw(st.integers(0, 255))
        elif op == "ascii":  # a plausible header character: digits, quotes, '=', letters
            out[where] = ord(draw(st.sampled_from("0123456789'=-+.ETFXY /")))
        elif op == "insert":
            out[where:where] = draw(st.binary(min_size=1, max_size=80))
        else:
            del out[where:where + draw(st.integers(1, 200))]
    if draw(st.booleans()):
        out = out[:draw(st.integers(0, len(out)))]
    return bytes(out)


def _refused_or_read(fn, data: bytes):
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn(data)
    except ContractError as exc:
        assert exc.reason in REASONS, exc.reason
        result = exc
    assert time.perf_counter() - start < MAX_SECONDS
    return result


@SETTINGS
@given(mutated(CATALOG))
def test_mutated_catalog_is_refused_with_a_reason_or_read(data):
    _refused_or_read(lambda d: validate_catalog(d, KEY), data)


def _open_and_read(data: bytes):
    efile = ExposureFile.open(data, what="difference")
    ny, nx = efile.shape
    exp = efile.read_windows(np.array([[0, min(ny, 9), 0, min(nx, 9)]]))
    assert exp.image.shape == efile.shape
    return exp


@pytest.mark.parametrize("form", sorted(IMAGES))
def test_mutated_image_is_refused_with_a_reason_or_read(form):
    @SETTINGS
    @given(mutated(IMAGES[form]))
    def run(data):
        _refused_or_read(_open_and_read, data)

    run()


def _data_end(data: bytes) -> int:
    """Where the last HDU's data ends; after it only the padding to 2880 bytes follows (a file
    cut inside that padding holds all its data and is read)."""
    with fits.open(io.BytesIO(data)) as hdul:
        last = hdul[-1]
        return last.fileinfo()["datLoc"] + data_bytes(last.header)


@pytest.mark.parametrize("form", sorted(IMAGES))
def test_image_cut_at_every_block_is_refused_as_truncated(form):
    data = IMAGES[form]
    for end in range(0, _data_end(data), 2880 // 4):
        result = _refused_or_read(_open_and_read, data[:end])
        assert isinstance(result, ContractError), end
        # cut exactly between two HDUs, the file is a shorter legal FITS file without its planes
        assert result.reason in ("empty_file", "truncated_file", "not_fits",
                                 "missing_extension"), (end, result)


def test_catalog_cut_at_every_block_is_refused_as_truncated():
    for end in range(0, _data_end(CATALOG), 2880 // 4):
        result = _refused_or_read(lambda d: validate_catalog(d, KEY), CATALOG[:end])
        assert isinstance(result, ContractError), end
        assert result.reason in ("empty_file", "truncated_file", "missing_extension"), (end, result)
