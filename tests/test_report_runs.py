"""`course report` on real runs made here: three runs of lesson 01 with different parameters,
standing in for three learners, each handed in with `course run --share`, make a class page
with the summed machine and its TOP500 placement."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import zipfile

import pytest

import utils

LEARNERS = {  # label -> parameters of lesson 01 (each learner's own sizes)
    "learner-a": ["-p", "MATMUL_SIZES", "[64]", "-p", "FRAMEWORK", "none"],
    "learner-b": ["-p", "MATMUL_SIZES", "[128]", "-p", "FRAMEWORK", "none"],
    "learner-c": ["-p", "MATMUL_SIZES", "[64,128]", "-p", "FRAMEWORK", "none"],
}


def course(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "utils.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def make_class_runs(base):
    shared = []
    for label, parameters in LEARNERS.items():
        done = course("run", "01", "--profile", "smoke", "--no-progress", "--output",
                      str(base / label), "--share", "--share-label", label, *parameters,
                      cwd=base)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        shared.append(base / f"{label}.course-run.zip")
    return base, shared


@pytest.mark.notebooks
@pytest.mark.timeout(900)
def test_three_learners_make_a_class_report(tmp_path):
    """One test, so that parallel workers never make the three runs twice."""
    base, shared = make_class_runs(tmp_path)
    check_report_of_one_run(base)
    check_class_report(base, shared)
    check_shared_files(shared)


def check_report_of_one_run(base):
    done = course("report", str(base / "learner-a"), cwd=base)
    assert done.returncode == 0, done.stderr
    page = (base / "learner-a" / "report.html").read_text()
    with open(base / "learner-a" / "results.csv", newline="") as table:
        names = [row["name"] for row in csv.DictReader(table)]
    assert len(names) >= 3
    for name in names:
        assert name in page, f"{name} is recorded but not in the report"
    for section in ("The machine", "What each lesson measured", "TOP500 history",
                    "The chapter's milestones"):
        assert section in page


def check_class_report(base, shared):
    out = base / "class.html"
    done = course("report", *map(str, shared), "--output", str(out), cwd=base)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    total = 0.0
    for archive in shared:
        with zipfile.ZipFile(archive) as z:
            rows = list(csv.DictReader(z.read("results.csv").decode().splitlines()))
        total += next(float(r["value"]) for r in rows if r["name"] == "fp64_matmul_gflops")
    assert "Your classroom as a supercomputer" in page and "The class: 3 machines" in page
    summed = re.search(r"machines that ran lesson 01 reach ([\d,.]+) GFLOP/s", page)
    assert summed and float(summed.group(1).replace(",", "")) == pytest.approx(total, rel=1e-3)
    assert re.search(r"the classroom \(sum\)</b>: [\d,.]+ GFLOP/s, sum of the measured rates\. "
                     r"[^<]*(#1|#500|TOP500)", page)
    for label in LEARNERS:
        assert label in page


def check_shared_files(shared):
    import getpass

    for archive in shared:
        with zipfile.ZipFile(archive) as z:
            assert sorted(z.namelist()) == ["results.csv", "summary.json"]
            text = "".join(z.read(n).decode() for n in z.namelist())
        assert str(utils.REPO_ROOT) not in text and "/tmp/" not in text
        assert not re.search(r'"/[A-Za-z]', text), "an absolute path in the shared summary"
        user = getpass.getuser()
        if user not in ("root",):
            assert user not in text
