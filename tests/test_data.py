"""utils.data: the shipped files load; broken files are refused with file, line and column."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

import utils
from utils import data
from utils.data import DataFileError


@pytest.mark.parametrize("name", sorted(data.SCHEMAS))
def test_every_shipped_file_loads_with_its_types(name):
    frame = data.load(name)
    assert len(frame) > 0
    for column in data.SCHEMAS[name].columns:
        if column.kind in ("date", "month"):
            assert pd.api.types.is_datetime64_any_dtype(frame[column.name])
        elif column.kind in ("int", "float"):
            assert pd.api.types.is_numeric_dtype(frame[column.name])


def test_every_file_is_documented_in_sources():
    sources = (utils.DATA_DIR / "SOURCES.md").read_text()
    for schema in data.SCHEMAS.values():
        assert f"## {schema.filename}" in sources
    csvs = {p.name for p in utils.DATA_DIR.glob("*.csv")}
    assert csvs == {s.filename for s in data.SCHEMAS.values()}


def test_top500_is_internally_consistent():
    top = data.load("top500")
    assert (top["rmax_no1_tflops"] <= top["rpeak_no1_tflops"]).all()
    assert (top["rmax_no500_tflops"] < top["rmax_no1_tflops"]).all()
    assert (top["rmax_sum_tflops"] > top["rmax_no1_tflops"]).all()
    assert top["list"].is_monotonic_increasing


def test_alexnet_parameter_count_matches_layer_arithmetic():
    convs = [(11, 3, 96), (5, 96, 256), (3, 256, 384), (3, 384, 384), (3, 384, 256)]
    dense = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    total = sum(k * k * cin * cout + cout for k, cin, cout in convs)
    total += sum(n_in * n_out + n_out for n_in, n_out in dense)
    table = data.load("alexnet").set_index("quantity")["value"]
    assert table["parameters_ungrouped_227"] == total == 62_378_344
    assert table["forward_flops_grouped_227"] == 2 * table["forward_macs_grouped_227"]


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(utils.DATA_DIR, folder)
    return folder


def _break(data_dir, filename, old, new):
    path = data_dir / filename
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_missing_file(data_dir):
    (data_dir / "top500.csv").unlink()
    with pytest.raises(DataFileError, match=r"top500.csv: data file not found.*git checkout"):
        data.load("top500", data_dir)


def test_missing_column(data_dir):
    _break(data_dir, "transistors.csv", "processor,year,", "chip,year,")
    with pytest.raises(DataFileError, match=r"line 1 \(header\): missing column\(s\) 'processor'"):
        data.load("transistors", data_dir)


def test_not_a_number_names_line_and_column(data_dir):
    _break(data_dir, "transistors.csv", "Intel 8008,1972,3500,", "Intel 8008,1972,lots,")
    with pytest.raises(DataFileError, match=r"transistors.csv, line 3, column 'transistors': 'lots' is not a number"):
        data.load("transistors", data_dir)


# One case per kind of range: both bounds, a lower bound only (alexnet.value and the
# tpu_v1_paper columns have no upper bound), and an upper bound only (no shipped column has one,
# so the case adds a schema of its own). Each names the line, the column and the bound broken.
RANGE_CASES = {
    "two-sided, below": ("top500", "top500.csv",
                         "1993-06,CM-5/1024 (Thinking Machines),United States,1024,0.0597",
                         "1993-06,CM-5/1024 (Thinking Machines),United States,1024,-5",
                         r"line 2, column 'rmax_no1_tflops': -5 is outside the plausible range: "
                         r"it must be a number >= 0\.001 and <= 1e\+08"),
    "two-sided, above": ("cpu_peak", "cpu_peak.csv", "sse2,SSE2,Core 2 / Nehalem,128,",
                         "sse2,SSE2,Core 2 / Nehalem,4096,",
                         r"line 2, column 'simd_bits': 4096 is outside the plausible range: "
                         r"it must be a number >= 64 and <= 2048"),
    "lower bound only (alexnet.value)": (
        "alexnet", "alexnet.csv", "training_epochs,90,", "training_epochs,-90,",
        r"column 'value': -90 is outside the plausible range: it must be a number >= 0;"),
    "lower bound only (tpu_v1_paper)": (
        "tpu_v1_paper", "tpu_v1_paper.csv", "server busy power,455,", "server busy power,-455,",
        r"column 'cpu_haswell_e5_2699v3': -455 is outside the plausible range: "
        r"it must be a number >= 0;"),
    "upper bound only": ("capped", "capped.csv", "a,5", "a,500",
                         r"capped.csv, line 2, column 'x': 500 is outside the plausible range: "
                         r"it must be a number <= 100;"),
}


@pytest.mark.parametrize("case", list(RANGE_CASES))
def test_out_of_range_value(data_dir, monkeypatch, case):
    name, filename, old, new, message = RANGE_CASES[case]
    if name == "capped":  # a column with only an upper bound
        schema = data.Schema(filename, (data.Column("key"), data.Column("x", "float", max=100)))
        monkeypatch.setitem(data.SCHEMAS, name, schema)
        (data_dir / filename).write_text("key,x\na,5\nb,7\n")
    _break(data_dir, filename, old, new)
    with pytest.raises(DataFileError, match=message):
        data.load(name, data_dir)


def test_bad_date(data_dir):
    _break(data_dir, "ai_compute.csv", "AlexNet,2012-06-01", "AlexNet,June 2012")
    with pytest.raises(DataFileError, match=r"line 2, column 'date': 'June 2012' is not a date of the form YYYY-MM-DD"):
        data.load("ai_compute", data_dir)


def test_duplicate_key(data_dir):
    _break(data_dir, "top500.csv", "1993-11,", "1993-06,")
    with pytest.raises(DataFileError, match=r"line 3, column 'list': '1993-06' repeats line 2"):
        data.load("top500", data_dir)


def test_wrong_field_count(data_dir):
    _break(data_dir, "cpu_peak.csv", "sse2,SSE2,", "sse2,SSE2,extra,")
    with pytest.raises(DataFileError, match=r"cpu_peak.csv, line 2: 8 fields where the header has 7"):
        data.load("cpu_peak", data_dir)


def test_empty_required_value(data_dir):
    _break(data_dir, "accelerators.csv", "Tesla M2090,GPU,2011", "Tesla M2090,GPU,")
    with pytest.raises(DataFileError, match=r"column 'year': empty, but this column needs a value"):
        data.load("accelerators", data_dir)


def test_empty_file(data_dir):
    (data_dir / "scaling.csv").write_text("")
    with pytest.raises(DataFileError, match="the file is empty"):
        data.load("scaling", data_dir)


def test_unknown_name():
    with pytest.raises(DataFileError, match="unknown data file 'top501'"):
        data.load("top501")


def test_bsc_node_counts_follow_from_the_top500_entries():
    bsc = data.load("bsc_systems").set_index("system")
    mn3, mino, cte = bsc.loc["MareNostrum 3"], bsc.loc["MinoTauro"], bsc.loc["CTE-POWER"]
    assert mn3["nodes"] * 2 * 8 == mn3["cores"]  # two 8-core Xeon E5-2670 per server
    assert mino["nodes"] * (2 * 6 + 2 * 16) == mino["cores"]  # 2 Xeons + 2 M2090 (16 SMs)
    node_gflops = 2 * 22 * 3.1 * 8 + 4 * 6605  # TOP500's counting, see SOURCES.md
    assert cte["nodes"] == round(cte["rpeak_tflops"] * 1e3 / node_gflops)
    assert cte["nodes"] * (2 * 20 + 4 * 80) == cte["cores"]  # 20-core POWER9s, 80-SM V100s
    assert mino["rpeak_tflops"] == pytest.approx(
        mino["nodes"] * (2 * 6 * 2.53 * 4 + 2 * 665) / 1e3, rel=1e-4)


def test_campos2017_figures_are_the_abstracts():
    paper = data.load("campos2017").set_index("quantity")["value"]
    assert paper["speedup_largest_run_over_one_node"] < paper["nodes_largest_run"]
    assert paper["gpus_per_node"] == 4
