"""MPCORB.DAT reading and writing, packed designations and packed epochs."""

import numpy as np
import pytest

from alertprod.errors import OrbitError
from alertprod.ids import designation_from_ss_object_id, ss_object_id
from alertprod.orbits import (
    OrbitCatalog,
    pack_designation,
    pack_epoch,
    provisional_designations,
    read_mpcorb,
    unpack_designation,
    unpack_epoch,
    write_mpcorb,
)

# Published MPCORB.DAT records (MPC, orbits of epoch 2025 Nov. 21.0 TT), verbatim.
CERES = ("00001    3.34  0.15 K25BL 231.53974   73.29974   80.24964   10.58789  0.0795764  "
         "0.21429712   2.7656157  0 MPO980521  7297 126 1801-2026 0.83 M-v 30k Veres      "
         "4000      (1) Ceres              20260103")
PALLAS = ("00002    4.12  0.15 K25BL 211.52976  310.93340  172.88859   34.92833  0.2306430  "
          "0.21379713   2.7699258  0 MPO980521  9062 123 1804-2025 0.77 M-c 28k MPCORBFIT  "
          "4000      (2) Pallas             20251214")
EROS = ("00433   10.38  0.15 K25BL 310.55432  178.92978  304.27008   10.82847  0.2228360  "
        "0.55977529   1.4581210  0 E2025-YE5 16519  59 1893-2025 0.52 M-v 3Ek MPCORBFIT  "
        "1804    (433) Eros               20251222")

# The shape of the real file's header: prose, the column header, a blank line, a dashed rule.
HEADER = """MINOR PLANET CENTER ORBIT DATABASE (MPCORB)

This file contains published orbital elements for all numbered and unnumbered
multi-opposition minor planets for which it is possible to make reasonable
predictions.  It also includes one-opposition objects.

Software programs that use this file should skip over the header - i.e.,
everything up to and including the line of dashes.

Des'n     H     G   Epoch     M        Peri.      Node       Incl.       e            n           a        Reference #Obs #Opp    Arc    rms  Perts   Computer

----------------------------------------------------------------------------------------------------------------------------------------------------------------
"""


def test_reads_published_records_of_ceres_pallas_and_eros():
    cat = read_mpcorb("\n".join([CERES, PALLAS, EROS]) + "\n")
    assert len(cat) == 3
    assert list(cat.packed_designation) == ["00001", "00002", "00433"]
    assert list(cat.designation) == ["(1) Ceres", "(2) Pallas", "(433) Eros"]
    np.testing.assert_allclose(cat.h, [3.34, 4.12, 10.38])
    np.testing.assert_allclose(cat.g, [0.15, 0.15, 0.15])
    np.testing.assert_allclose(cat.epoch_mjd, 61000.0)  # 2025-11-21.0 TT
    assert cat.mean_anomaly[2] == 310.55432 and cat.argperi[2] == 178.92978
    assert cat.node[2] == 304.27008 and cat.i[2] == 10.82847
    assert cat.e[2] == 0.2228360 and cat.mean_motion[2] == 0.55977529 and cat.a[2] == 1.4581210
    assert designation_from_ss_object_id(int(cat.ss_object_ids[2])) == "00433"
    # The MPC's mean motion is k·a^-1.5: consistent with the semi-major axis it publishes.
    np.testing.assert_allclose(np.rad2deg(0.01720209895 / cat.a**1.5), cat.mean_motion, rtol=2e-7)


def test_write_reproduces_published_records_byte_for_byte():
    text = "\n".join([CERES, PALLAS, EROS]) + "\n"
    assert write_mpcorb(read_mpcorb(text)) == text


def test_full_file_header_and_blank_section_separators_are_skipped():
    text = HEADER + CERES + "\n\n" + PALLAS + "\n   \n" + EROS + "\n"
    cat = read_mpcorb(text)
    assert list(cat.designation) == ["(1) Ceres", "(2) Pallas", "(433) Eros"]
    assert write_mpcorb(cat, header=True).splitlines()[-4].startswith("-" * 160)


def test_malformed_record_error_names_its_line_number():
    bad = EROS.replace("0.2228360", "0.22x8360")
    text = HEADER + CERES + "\n" + bad + "\n"
    line_number = HEADER.count("\n") + 2
    with pytest.raises(OrbitError, match=rf"line {line_number}: e \(columns 71-79\)"):
        read_mpcorb(text)


def test_lenient_read_skips_and_collects_malformed_records():
    text = "\n".join([CERES, CERES[:60], PALLAS.replace("K25BL", "K25ZZ"), EROS]) + "\n"
    rejected: list[OrbitError] = []
    cat = read_mpcorb(text, strict=False, rejected=rejected)
    assert list(cat.packed_designation) == ["00001", "00433"]
    assert [err.line_number for err in rejected] == [2, 3]
    assert "epoch" in str(rejected[1])


def test_synthetic_orbits_round_trip_to_written_precision():
    rng = np.random.default_rng(7)
    n = 40
    cat = OrbitCatalog(packed_designation=provisional_designations(61000.0, n),
                       h=rng.uniform(5, 25, n), g=0.15, epoch_mjd=61000.0,
                       mean_anomaly=rng.uniform(0, 360, n), argperi=rng.uniform(0, 360, n),
                       node=rng.uniform(0, 360, n), i=rng.uniform(0, 60, n),
                       e=rng.uniform(0, 0.9, n), mean_motion=0.2, a=rng.uniform(0.8, 40, n))
    text = write_mpcorb(cat)
    assert all(len(line) == 202 for line in text.splitlines())
    back = read_mpcorb(text)
    assert list(back.packed_designation) == list(cat.packed_designation)
    assert list(back.designation) == list(cat.designation)
    for name, atol in [("h", 5e-3), ("mean_anomaly", 5e-6), ("argperi", 5e-6), ("node", 5e-6),
                       ("i", 5e-6), ("e", 5e-8), ("a", 5e-8)]:
        np.testing.assert_allclose(getattr(back, name), getattr(cat, name), atol=atol)
    assert write_mpcorb(back) == text


def test_fractional_epoch_is_written_at_the_nearest_whole_day_by_propagation():
    cat = read_mpcorb(EROS)
    cat.epoch_mjd[:] = 61000.25
    back = read_mpcorb(write_mpcorb(cat))
    assert back.epoch_mjd[0] == 61000.0
    expected = 310.55432 - 0.25 * np.rad2deg(0.01720209895 / 1.4581210**1.5)
    assert back.mean_anomaly[0] == pytest.approx(expected, abs=6e-6)


@pytest.mark.parametrize(("readable", "packed"), [
    ("(1)", "00001"), ("(99942)", "99942"), ("(100001)", "A0001"), ("(134340)", "D4340"),
    ("(360017)", "a0017"), ("(619999)", "z9999"), ("(620000)", "~0000"), ("(3140113)", "~AZaz"),
    ("2024 AA", "K24A00A"), ("2007 TA418", "K07Tf8A"), ("1995 XA", "J95X00A"),
    ("2026 WA1", "K26W01A"), ("2040 P-L", "PLS2040"), ("3138 T-1", "T1S3138"),
])
def test_packed_designations_match_the_mpc_examples(readable, packed):
    assert pack_designation(readable) == packed
    assert unpack_designation(packed) == readable


@pytest.mark.parametrize(("packed", "mjd"), [("K24AH", 60600.0), ("K25BL", 61000.0),
                                             ("J9611", 50083.0), ("K01AV", 52213.0)])
def test_packed_epochs_decode_to_0h_tt(packed, mjd):
    assert unpack_epoch(packed) == mjd
    assert pack_epoch(mjd) == packed


def test_packed_epoch_rejects_fractional_days_and_bad_dates():
    with pytest.raises(OrbitError, match="mjd_tt"):
        pack_epoch(61000.5)
    with pytest.raises(OrbitError, match="K25D0"):
        unpack_epoch("K25D0")


def test_catalog_ss_object_ids_are_the_shared_id_of_each_packed_designation():
    packed = ["00001", "A0001", "~AZaz", "K24A00A", "PLS2040", "7", "K26W00AB"]
    cat = OrbitCatalog(packed_designation=packed, h=10.0, g=0.15, epoch_mjd=61000.0,
                       mean_anomaly=0.0, argperi=0.0, node=0.0, i=0.0, e=0.1, mean_motion=0.2,
                       a=2.5, designation=packed)
    assert cat.ss_object_ids.tolist() == [ss_object_id(p) for p in packed]
    assert cat[2:4].packed_designation.tolist() == ["~AZaz", "K24A00A"]
    assert len(cat[cat.e > 0]) == 7
