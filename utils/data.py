"""Load the curated figures in data/ as validated pandas DataFrames.

Each file has a schema: its columns, their types and plausible ranges. A file that is missing,
lacks a column, or holds a value that is not a number, not a date or out of range raises
:class:`DataFileError` naming the file, the line and the column. Provenance and units are in
data/SOURCES.md.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import utils
from utils import errors
from utils.errors import CourseError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DataFileError",
    "Column",
    "Schema",
    "SCHEMAS",
    "load",
    "data_path",
    "PFS_DAY_FLOP",
    "CLAIM_VERDICTS",
]

#: One petaflop/s-day in FLOP: 10**15 FLOP/s for 86,400 s.
PFS_DAY_FLOP = 1e15 * 86_400

Kind = Literal["str", "int", "float", "date", "month"]


class DataFileError(CourseError, ValueError):
    """A data file is missing or malformed. The message names file, line and column."""


@dataclass(frozen=True)
class Column:
    """One column of a data file: its type, whether it may be empty, its plausible range (either
    bound may be missing) and, for text, the values it may take (``choices``; empty: any)."""

    name: str
    kind: Kind = "str"
    required: bool = True
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Schema:
    """The columns a data file must have, in any order (extra columns are kept)."""

    filename: str
    columns: tuple[Column, ...]
    description: str = ""
    unique: tuple[str, ...] = field(default_factory=tuple)


_YEAR = dict(min=1940, max=2030)

#: Verdicts a claim of the chapter may carry (utils.chapter explains them).
CLAIM_VERDICTS = ("holds", "differs", "typo", "unverified")

def _quantities(filename: str, description: str) -> Schema:
    """A file of named quantities: ``quantity,value,unit,note``, one figure per line."""
    columns = (Column("quantity"), Column("value", "float", min=0), Column("unit"),
               Column("note", required=False))
    return Schema(filename, columns, description, unique=("quantity",))


SCHEMAS: dict[str, Schema] = {
    "transistors": Schema(
        "transistors.csv",
        (
            Column("processor"),
            Column("year", "int", **_YEAR),
            Column("transistors", "int", min=1e3, max=1e13),
            Column("designer"),
            Column("process_nm", "float", required=False, min=1, max=2e4),
            Column("area_mm2", "float", required=False, min=1, max=1e4),
            Column("source"),
        ),
        "Transistor counts of microprocessors",
        unique=("processor",),
    ),
    "top500": Schema(
        "top500.csv",
        (
            Column("list", "month"),
            Column("system_no1"),
            Column("country_no1"),
            Column("cores_no1", "int", min=1, max=1e9),
            Column("rmax_no1_tflops", "float", min=1e-3, max=1e8),
            Column("rpeak_no1_tflops", "float", min=1e-3, max=1e8),
            Column("rmax_no500_tflops", "float", min=1e-5, max=1e7),
            Column("rmax_sum_tflops", "float", min=1e-2, max=1e9),
        ),
        "TOP500 #1, #500 and sum of Rmax per list",
        unique=("list",),
    ),
    "bsc_systems": Schema(
        "bsc_systems.csv",
        (
            Column("system"),
            Column("install_year", "int", **_YEAR),
            Column("top500_list", "month"),
            Column("rank", "int", min=1, max=500),
            Column("cores", "int", min=1, max=1e9),
            Column("rmax_tflops", "float", min=1e-3, max=1e8),
            Column("rpeak_tflops", "float", min=1e-3, max=1e8),
            Column("nodes", "int", required=False, min=1, max=1e6),
            Column("racks", "int", required=False, min=1, max=1e4),
            Column("green500_list", "month", required=False),
            Column("green500_rank", "int", required=False, min=1, max=500),
            Column("green500_mflops_per_watt", "float", required=False, min=1, max=1e6),
            Column("architecture"),
            Column("notes", required=False),
        ),
        "Barcelona Supercomputing Center systems in the TOP500",
        unique=("system",),
    ),
    "chapter_claims": Schema(
        "chapter_claims.csv",
        (
            Column("claim"),
            Column("lesson"),
            Column("section"),
            Column("value"),
            Column("unit", required=False),
            Column("record_value", required=False),
            Column("source"),
            Column("verdict", choices=CLAIM_VERDICTS),
            Column("explanation", required=False),
        ),
        "Figures the chapter states, the record's figure, its source and a verdict",
        unique=("claim",),
    ),
    "ai_compute": Schema(
        "ai_compute.csv",
        (
            Column("model"),
            Column("date", "date"),
            Column("training_pfs_days", "float", required=False, min=1e-7, max=1e9),
            Column("training_flop", "float", required=False, min=1e12, max=1e30),
            Column("source"),
        ),
        "Training compute of notable models",
        unique=("model",),
    ),
    "accelerators": Schema(
        "accelerators.csv",
        (
            Column("device"),
            Column("kind"),
            Column("year", "int", **_YEAR),
            Column("fp64_tflops", "float", required=False, min=0.01, max=1e4),
            Column("fp32_tflops", "float", required=False, min=0.01, max=1e4),
            Column("fp16_bf16_tensor_tflops", "float", required=False, min=0.01, max=1e5),
            Column("int8_tops", "float", required=False, min=0.01, max=1e5),
            Column("memory_gb", "float", required=False, min=0.1, max=1e4),
            Column("mem_bw_gbs", "float", required=False, min=1, max=1e5),
            Column("tdp_w", "float", required=False, min=1, max=1e4),
            Column("tf32_tensor_tflops", "float", required=False, min=0.01, max=1e5),
            Column("mxu_rows", "int", required=False, min=1, max=4096),
            Column("pod_chips", "int", required=False, min=1, max=1e6),
            Column("tensor_cores", "int", required=False, min=1, max=1e5),
            Column("boost_clock_mhz", "float", required=False, min=1, max=1e4),
            Column("notes", required=False),
        ),
        "Peak figures of GPUs and TPUs (and one CPU socket)",
        unique=("device",),
    ),
    "cpu_peak": Schema(
        "cpu_peak.csv",
        (
            Column("id"),
            Column("isa"),
            Column("example_microarchitectures"),
            Column("simd_bits", "int", min=64, max=2048),
            Column("fp_units_per_core"),
            Column("fp64_flops_per_cycle", "int", min=1, max=256),
            Column("fp32_flops_per_cycle", "int", min=1, max=512),
        ),
        "FLOPs per cycle per core by instruction set",
        unique=("id",),
    ),
    "alexnet": _quantities("alexnet.csv",
                           "AlexNet facts: parameters, multiply-adds, training setup"),
    "alexnet_throughput": Schema(
        "alexnet_throughput.csv",
        (
            Column("source"),
            Column("hardware"),
            Column("devices", "int", min=1, max=1e5),
            Column("precision"),
            Column("batch_per_device", "int", required=False, min=1, max=1e5),
            Column("data"),
            Column("images_per_s", "float", min=0.01, max=1e8),
        ),
        "AlexNet training throughput on reference GPUs",
    ),
    "scaling": Schema(
        "scaling.csv",
        (
            Column("source"),
            Column("hardware"),
            Column("model"),
            Column("devices", "int", min=1, max=1e6),
            Column("devices_per_node", "int", min=1, max=1024),
            Column("speedup", "float", required=False, min=0.01, max=1e6),
            Column("efficiency_pct", "float", required=False, min=0, max=200),
            Column("batch_per_device", "int", required=False, min=1, max=1e5),
            Column("images_per_s", "float", required=False, min=0.01, max=1e8),
            Column("note", required=False),
        ),
        "Published data-parallel scaling results",
    ),
    "campos2017": _quantities("campos2017.csv",
                              "Campos et al., CCGrid 2017: the figures its abstract publishes "
                              "(the chapter's graphs [16] and [17])"),
    "interconnects": Schema(
        "interconnects.csv",
        (
            Column("link"),
            Column("connects"),
            Column("bandwidth_gbs_per_direction", "float", min=0.1, max=1e4),
            Column("source"),
            Column("note", required=False),
        ),
        "Links between devices and nodes: bandwidth per direction",
        unique=("link",),
    ),
    "tpu_v1_paper": Schema(
        "tpu_v1_paper.csv",
        (
            Column("metric"),
            Column("cpu_haswell_e5_2699v3", "float", required=False, min=0),
            Column("gpu_k80", "float", required=False, min=0),
            Column("tpu_v1", "float", required=False, min=0),
            Column("unit"),
        ),
        "TPU v1 paper (Jouppi et al. 2017) comparison",
        unique=("metric",),
    ),
}


def data_path(name: str, data_dir: Path | None = None) -> Path:
    """Return the path of data file ``name`` (a key of :data:`SCHEMAS`)."""
    schema = _schema(name)
    return Path(data_dir or utils.DATA_DIR) / schema.filename


def load(name: str, data_dir: Path | None = None) -> pd.DataFrame:
    """Load data file ``name`` (a key of :data:`SCHEMAS`) as a validated DataFrame.

    Numbers become ``int``/``float`` columns (``Int64`` where an integer column may be empty),
    dates become ``datetime64``, empty cells become missing values.

    Raises:
        DataFileError: the file is missing, a required column is absent, or a value is not of
            the column's type or outside its plausible range.
    """
    import pandas as pd

    schema = _schema(name)
    path = data_path(name, data_dir)
    rows, header = _read_rows(path)
    missing = [c.name for c in schema.columns if c.name not in header]
    if missing:
        raise DataFileError(
            f"{path}, line 1 (header): missing column(s) {', '.join(map(repr, missing))}; "
            f"the file has {', '.join(header)}. See data/SOURCES.md for the expected columns."
        )
    if not rows:
        raise DataFileError(f"{path}: the file has a header but no data rows.")

    columns: dict[str, list] = {h: [] for h in header}
    by_name = {c.name: c for c in schema.columns}
    seen: dict[str, dict[object, int]] = {u: {} for u in schema.unique}
    for line, row in rows:
        if len(row) != len(header):
            raise DataFileError(
                f"{path}, line {line}: {len(row)} fields where the header has {len(header)}; "
                "a comma inside a value needs double quotes around the value."
            )
        for head, raw in zip(header, row):
            col = by_name.get(head, Column(head, required=False))
            value = _parse(raw.strip(), col, path, line)
            columns[head].append(value)
            if head in seen and value is not None:
                if value in seen[head]:
                    raise DataFileError(
                        f"{path}, line {line}, column '{head}': {raw!r} repeats line "
                        f"{seen[head][value]}; each value must appear once."
                    )
                seen[head][value] = line

    frame = pd.DataFrame(columns)
    for col in schema.columns:
        if col.kind == "int":
            dtype = "int64" if frame[col.name].notna().all() else "Int64"
            frame[col.name] = frame[col.name].astype(dtype)
        elif col.kind == "float":
            frame[col.name] = frame[col.name].astype("float64")
        elif col.kind in ("date", "month"):
            frame[col.name] = pd.to_datetime(frame[col.name])
    frame.attrs["source_file"] = str(path)
    frame.attrs["description"] = schema.description
    return frame


def _schema(name: str) -> Schema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise DataFileError(
            f"unknown data file {name!r}; the course has {', '.join(sorted(SCHEMAS))}."
        ) from None


def _read_rows(path: Path) -> tuple[list[tuple[int, list[str]]], list[str]]:
    if not path.is_file():
        raise DataFileError(
            f"{path}: data file not found. It ships with the course in data/; restore it with "
            "'git checkout -- data/' or set COURSE_DATA_DIR to the folder that holds it."
        )
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(f"{path}: not a readable UTF-8 CSV file ({error}).") from None
    if not header or not any(header):
        raise DataFileError(f"{path}, line 1: the file is empty; it needs a header line.")
    return rows, header


def _parse(raw: str, col: Column, path: Path, line: int) -> object:
    where = f"{path}, line {line}, column '{col.name}'"
    if raw == "":
        if col.required:
            raise DataFileError(f"{where}: empty, but this column needs a value.")
        return None
    if col.kind == "str":
        if col.choices and raw not in col.choices:
            raise DataFileError(f"{where}: {raw!r} is not one of {', '.join(col.choices)}.")
        return raw
    if col.kind in ("int", "float"):
        try:
            number = float(raw.replace("_", ""))
        except ValueError:
            raise DataFileError(f"{where}: {raw!r} is not a number.") from None
        if not math.isfinite(number):
            raise DataFileError(f"{where}: {raw!r} is not a finite number.")
        if col.kind == "int" and number != int(number):
            raise DataFileError(f"{where}: {raw!r} is not a whole number.")
        try:  # the course's one range check; a bound may be missing on either side
            errors.number(number, col.name, minimum=col.min, maximum=col.max)
        except errors.ArgumentError as error:
            raise DataFileError(
                f"{where}: {raw} is outside the plausible range: it {error.requirement}; "
                "check the value and its unit (see data/SOURCES.md)."
            ) from None
        return int(number) if col.kind == "int" else number
    text = raw if col.kind == "date" else raw + "-01"
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        expected = "YYYY-MM-DD" if col.kind == "date" else "YYYY-MM"
        raise DataFileError(f"{where}: {raw!r} is not a date of the form {expected}.") from None
    if not 1940 <= parsed.year <= 2030:
        raise DataFileError(f"{where}: year {parsed.year} is outside 1940-2030.")
    return parsed
