"""course report: one run's page, a class page, and the shared file of one learner.

The runs are written by the tests (summary.json and executed notebooks holding recorded
results), so these tests need no notebook execution; tests/test_report_runs.py makes real runs.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import nbformat
import pytest

from utils import report
from utils.results import MIME_TYPE

HARDWARE = {"runtime": "local", "cpu": {"model": "Test CPU 9000", "usable_cores": 4.0,
                                        "peak_gflops_fp32": 200.0, "peak_gflops_fp64": 100.0},
            "memory_total_gb": 16.0, "gpus": [], "tpu": {"chips": 0}}


def write_run(folder: Path, results: dict[str, list[tuple[str, float, str]]],
              version: str = "v1", profile: str = "smoke", failed: tuple[str, ...] = (),
              output_root: str = "/home/ana/course/executed") -> Path:
    """A run folder as `course run` leaves it: summary.json and executed notebooks."""
    folder.mkdir(parents=True)
    notebooks = []
    for stem, rows in results.items():
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("record(...)")
        for name, value, unit in rows:
            payload = {"name": name, "value": value, "unit": unit, "description": f"d {name}",
                       "lesson": "", "section": "1. s"}
            cell.outputs.append(nbformat.v4.new_output(
                "display_data", data={MIME_TYPE: payload, "text/plain": name}))
        nb.cells.append(cell)
        nbformat.write(nb, folder / f"{stem}.ipynb")
        notebooks.append({"notebook": stem, "status": "ok", "duration_s": 1.0,
                          "peak_memory_mb": 100, "output": f"{output_root}/{stem}.ipynb",
                          "parameters": {}, "error": None})
    for stem in failed:
        notebooks.append({"notebook": stem, "status": "failed", "duration_s": 1.0,
                          "peak_memory_mb": 100, "output": f"{output_root}/{stem}.ipynb",
                          "parameters": {}, "error": "cell 3: boom"})
    summary = {"created": "2026-11-28T10:00:00", "profile": profile, "course_version": version,
               "hardware": {**HARDWARE, "note": f"ran in {output_root}"}, "ok": not failed,
               "notebooks": notebooks}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


LEARNER = {
    "01_flops_and_moores_law": [("fp64_matmul_gflops", 80.0, "GFLOP/s"),
                                ("numpy_matmul_gflops_best", 160.0, "GFLOP/s"),
                                ("top500_list_led", "1996-11", "")],
    "03_alexnet_on_one_gpu": [("alexnet_images_per_s_float32", 40.0, "images/s")],
    "06_distributed_training_multi_worker": [("allreduce_alpha_us", 5.0, "us"),
                                             ("allreduce_beta_gbs", 2.0, "GB/s")],
}


def test_single_run_page_has_every_section_and_every_result(tmp_path):
    run_dir = write_run(tmp_path / "run", LEARNER, failed=("05_data_parallelism",))
    page = report.build_report([report.load_run(run_dir)], tmp_path / "r.html").read_text()
    for heading in ("The machine", "What each lesson measured", "TOP500 history",
                    "The chapter's milestones"):
        assert heading in page
    for rows in LEARNER.values():
        for name, value, _ in rows:
            assert name in page
    assert "Test CPU 9000" in page and "05_data_parallelism" in page
    assert 'src="data:image/png;base64,' in page
    assert not re.search(r'(src|href)="https?://', page), "the page must need no network"


def test_milestones_are_computed_from_the_recorded_rate(tmp_path):
    run = report.load_run(write_run(tmp_path / "run", LEARNER))
    rate, name = report.fp32_rate(run)
    assert (rate, name) == (160e9, "numpy_matmul_gflops_best")
    [(model, flop, seconds), *_] = report.milestones(rate)
    assert model == "AlexNet" and seconds == pytest.approx(flop / 160e9)


def test_references_are_in_the_results_unit():
    from utils.results import Result

    refs = dict(report.references(Result("matmul_tflops_float32", 1.0, "TFLOP/s", "")))
    assert refs["Tesla V100 SXM2 (fp32 peak)"] == pytest.approx(15.7)
    refs64 = dict(report.references(Result("fp64_matmul_gflops", 1.0, "GFLOP/s", "")))
    assert refs64["Tesla V100 SXM2 (fp64 peak)"] == pytest.approx(7800)


def test_class_page_sums_the_machines_and_places_them(tmp_path):
    runs = []
    for index, gflops in enumerate((50.0, 80.0, 120.0)):
        results = {k: list(v) for k, v in LEARNER.items()}
        results["01_flops_and_moores_law"] = [("fp64_matmul_gflops", gflops, "GFLOP/s")]
        runs.append(report.load_run(write_run(tmp_path / f"learner{index}", results)))
    page = report.build_report(runs, tmp_path / "class.html").read_text()
    assert "Your classroom as a supercomputer" in page
    assert "250 GFLOP/s" in page  # 50 + 80 + 120, summed by the report
    assert "What the interconnect would cost it" in page
    for run in runs:
        assert run.label in page


def test_other_versions_are_listed_apart_not_mixed(tmp_path):
    runs = [report.load_run(write_run(tmp_path / f"a{i}", LEARNER, version="v1"))
            for i in range(2)]
    runs.append(report.load_run(write_run(tmp_path / "old", LEARNER, version="v0")))
    page = report.build_report(runs, tmp_path / "class.html").read_text()
    assert "another course version" in page and "old (v0)" in page
    assert "The class: 2 machines" in page


def test_shared_file_holds_no_absolute_path_and_no_user_name(tmp_path, monkeypatch):
    monkeypatch.setattr(report.getpass, "getuser", lambda: "anaperez")
    monkeypatch.setattr(report.socket, "gethostname", lambda: "ana-laptop-7")
    run_dir = write_run(tmp_path / "run", LEARNER, output_root="/home/anaperez/course/executed")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["hardware"]["host_note"] = "measured on ana-laptop-7"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    shared = report.share_run(run_dir, label="learner-a")
    assert shared.name == "learner-a" + report.SHARE_SUFFIX
    with zipfile.ZipFile(shared) as archive:
        assert sorted(archive.namelist()) == ["results.csv", "summary.json"]
        text = "".join(archive.read(n).decode() for n in archive.namelist())
    assert "/home/" not in text and "anaperez" not in text and "ana-laptop-7" not in text
    assert not re.search(r'"/[A-Za-z]', text)
    again = report.load_run(shared)
    assert again.label == "learner-a"
    assert again.number("fp64_matmul_gflops") == 80.0


def test_share_never_overwrites(tmp_path):
    run_dir = write_run(tmp_path / "run", LEARNER)
    report.share_run(run_dir, label="x")
    with pytest.raises(report.ReportError, match="exists already"):
        report.share_run(run_dir, label="x")


@pytest.mark.parametrize("make", ["missing", "no_summary", "not_zip"])
def test_bad_runs_get_one_clear_error(tmp_path, make):
    path = tmp_path / "thing"
    if make == "no_summary":
        path.mkdir()
    elif make == "not_zip":
        path.write_text("hello")
    with pytest.raises(report.ReportError):
        report.load_run(path)


def test_latest_run_is_the_newest_folder(tmp_path):
    import os

    old = write_run(tmp_path / "executed" / "2026-01-01", LEARNER)
    new = write_run(tmp_path / "executed" / "2026-02-01", LEARNER)
    os.utime(old / "summary.json", (1, 1))
    assert report.latest_run(tmp_path / "executed") == new
    with pytest.raises(report.ReportError, match="no run found"):
        report.latest_run(tmp_path / "nothing")
