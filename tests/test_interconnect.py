"""utils.interconnect: the reference links (data/interconnects.csv) and the ring all-reduce
alpha-beta model."""

from __future__ import annotations

import shutil

import pytest

import utils
from utils import data
from utils.errors import ArgumentError
from utils.interconnect import allreduce_bytes, links, ring_allreduce_seconds


def test_links_are_per_direction_with_sources():
    table = links()
    assert table["PCIe 3.0 x16"].gb_per_s == pytest.approx(16 * 8 * 128 / 130 / 8, rel=1e-3)
    assert table["NVLink 2.0 (one link)"].bandwidth_bytes_per_s == 25e9
    assert table["NVLink 2.0 (six links of a V100)"].gb_per_s == 6 * 25
    assert table["InfiniBand EDR (one 4x port)"].bandwidth_bytes_per_s == 100e9 / 8
    assert all(link.source for link in table.values())
    # the chapter's "50 GB/s per NVLink 2.0 link" counts both directions
    assert table["NVLink 2.0 (one link)"].both_directions_gb_per_s == 50
    assert table["NVLink 2.0 (six links of a V100)"].both_directions_gb_per_s == 300


def test_a_bad_bandwidth_names_line_and_column(tmp_path):
    shutil.copy(utils.DATA_DIR / "interconnects.csv", tmp_path / "interconnects.csv")
    path = tmp_path / "interconnects.csv"
    path.write_text(path.read_text().replace(",15.75,", ",fast,", 1))
    with pytest.raises(data.DataFileError, match=r"line 2, column 'bandwidth_gbs_per_direction'"):
        links(tmp_path)


def test_ring_allreduce_follows_the_alpha_beta_formula():
    n, beta, alpha = 100e6, 10e9, 5e-6
    assert ring_allreduce_seconds(n, 1, beta, alpha) == 0.0
    assert ring_allreduce_seconds(n, 2, beta) == pytest.approx(n / beta)  # 2 (p-1)/p = 1
    assert ring_allreduce_seconds(n, 4, beta, alpha) == pytest.approx(6 * alpha + 1.5 * n / beta)
    big = ring_allreduce_seconds(n, 1024, beta)  # the bandwidth term tends to 2 n / beta
    assert 1.99 * n / beta < big < 2 * n / beta
    times = [ring_allreduce_seconds(n, p, beta, alpha) for p in (2, 4, 8, 16)]
    assert times == sorted(times)
    # AlexNet's float32 gradients over 8 GPUs on one NVLink 2.0 link (25 GB/s each way)
    assert ring_allreduce_seconds(allreduce_bytes(62_378_344), 8, 25e9) == pytest.approx(
        1.75 * 249_513_376 / 25e9)


@pytest.mark.parametrize("args", [(-1, 4, 1e9), (1, 0, 1e9), (1, 2, 0.0), (1, 2, 1e9, -1),
                                  (1, 2.5, 1e9), (1, True, 1e9)])
def test_ring_allreduce_refuses_bad_arguments(args):
    with pytest.raises(ArgumentError):  # a ValueError too, for older callers
        ring_allreduce_seconds(*args)
    with pytest.raises(ValueError):
        ring_allreduce_seconds(*args)


def test_a_bad_argument_is_named():
    with pytest.raises(ArgumentError, match="devices = 0 must be a whole number >= 1"):
        ring_allreduce_seconds(1e6, 0, 1e9)
    with pytest.raises(ArgumentError, match="bandwidth_bytes_per_s = 0 must be a number > 0"):
        ring_allreduce_seconds(1e6, 2, 0)


def test_allreduce_bytes():
    assert allreduce_bytes(62_378_344) == 249_513_376
    assert allreduce_bytes(10, 2) == 20
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ArgumentError, match="parameters"):
            allreduce_bytes(bad)
    with pytest.raises(ArgumentError, match="bytes_per_value"):
        allreduce_bytes(10, 0)
