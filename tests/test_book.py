"""``course book`` (utils/book.py): the copies it prepares, the welcome page, the folders it
refuses, and one real Jupyter Book build from a small run folder made here (no execution).

The browser checks of a book built from a real smoke run are in tests/test_browser.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat
import nbformat.v4 as v4
import pytest

import utils
from utils import book
from utils import notebooks as nbs
from utils.results import MIME_TYPE

# A 1x1 PNG.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5Er"
       "kJggg==")
NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
         "I0000 00:00:1795886135.751870   31985 port.cc:153] oneDNN custom operations are on.\n"
         "E0000 00:00:1795886149.586948   31985 cuda_platform.cc:52] failed call to cuInit: "
         "INTERNAL: CUDA error (303)\n")
SUMMARY = {
    "created": "2026-01-02T03:04:05",
    "profile": "default",
    "host": {"runtime": "colab", "cpu": "Test CPU 9000", "usable_cores": 4.0,
             "accelerator": "gpu", "gpus": ["NVIDIA T4", "NVIDIA T4"]},
    "ok": False,
    "memory_metric": "pss",
    "notebooks": [
        {"notebook": "00_welcome", "status": "ok", "duration_s": 12.5, "peak_memory_mb": 321.0,
         "output": "/elsewhere/00_welcome.ipynb", "parameters": {"MATMUL_SIZE": 256}},
        {"notebook": "01_flops_and_moores_law", "status": "failed", "duration_s": 3.0,
         "peak_memory_mb": None, "output": "/elsewhere/01_flops_and_moores_law.ipynb",
         "parameters": {}, "error": "cell 3: KeyError: 'x'"},
    ],
}
WIDGETS = {
    "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_slider",
                                                            "IPY_MODEL_out"]}},
    "slider": {"model_name": "IntRangeSliderModel",
               "state": {"description": "years", "min": 1971, "max": 2023,
                         "value": [1971, 2023]}},
    "out": {"model_name": "OutputModel", "state": {"outputs": [
        {"output_type": "display_data", "data": {"text/plain": "drawn inside the widget"},
         "metadata": {}}]}},
    "bar": {"model_name": "HBoxModel", "state": {"children": [
        "IPY_MODEL_label", "IPY_MODEL_progress", "IPY_MODEL_count"]}},
    "label": {"model_name": "HTMLModel", "state": {"description": "",
                                                   "value": "matmul\u2007sweep:\u2007100%"}},
    "progress": {"model_name": "FloatProgressModel",
                 "state": {"description": "", "value": 4.0, "min": 0.0, "max": 4.0}},
    "count": {"model_name": "HTMLModel", "state": {"description": "",
                                                   "value": "\u20074/4\u2007[00:01&lt;00:00]"}},
}


def _view(model_id: str, text: str) -> dict:
    return v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2,
                                                     "version_minor": 0},
        "text/plain": text})


def executed_notebook(stem: str) -> nbformat.NotebookNode:
    """An 'executed' lesson with every kind of output the book must handle."""
    result = {MIME_TYPE: {"name": "welcome_matmul_gflops", "value": 12.5, "unit": "GFLOP/s",
                          "description": "a test figure", "lesson": "", "section": ""},
              "text/plain": "recorded for your report: welcome_matmul_gflops = 12.5 GFLOP/s",
              "text/html": '<div class="course-result">recorded for your report: '
                           "welcome_matmul_gflops = 12.5 GFLOP/s</div>"}
    cells = [
        v4.new_markdown_cell(f"# Lesson {stem}\n\n{nbs.badges_markdown(stem)}\n\nThe product of "
                             "two $n \\times n$ matrices costs $2n^3$ FLOPs; sources are in "
                             "[the data notes](../data/SOURCES.md)."),
        v4.new_code_cell("print('rate')", outputs=[
            v4.new_output("stream", name="stdout", text="rate: 12.5 GFLOP/s\n"),
            v4.new_output("stream", name="stderr", text=NOISE + "UserWarning: a real warning\n"),
            v4.new_output("stream", name="stderr", text=NOISE)]),
        v4.new_code_cell("record(...)", outputs=[v4.new_output("display_data", data=result)]),
        v4.new_code_cell("plot()", outputs=[v4.new_output("display_data",
                                                          data={"image/png": PNG,
                                                                "text/plain": "<Figure>"})]),
        v4.new_code_cell("live(...)", outputs=[_view("box", "VBox(children=...)"),
                                               _view("bar", "matmul sweep:   0%")]),
        v4.new_markdown_cell("## Key points\n\n- measured, not typed."),
    ]
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": WIDGETS, "version_major": 2, "version_minor": 0}}
    return notebook


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder as `course run` writes it: two executed lessons and summary.json."""
    run = tmp_path / "run"
    run.mkdir()
    for entry in SUMMARY["notebooks"]:
        nbformat.write(executed_notebook(entry["notebook"]), run / f"{entry['notebook']}.ipynb")
    (run / "summary.json").write_text(json.dumps(SUMMARY))
    return run


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the copies -----------------------------------------------------------------------------

def test_banner_names_the_machine_profile_date_and_parameters():
    text = book.machine_banner(SUMMARY, SUMMARY["notebooks"][0], "00_welcome")
    for expected in ("Test CPU 9000", "4 usable cores", "2 x NVIDIA T4", "colab runtime",
                     "2026-01-02 03:04", "`default` profile", "`MATMUL_SIZE=256`",
                     "course run 00"):
        assert expected in text, expected
    assert "smoke profile" not in text
    assert text.startswith("```{admonition}") and text.endswith("```")


def test_banner_warns_about_smoke_figures_failures_and_missing_lessons():
    smoke = {**SUMMARY, "profile": "smoke", "host": {"cpu": "X", "usable_cores": 1,
                                                      "accelerator": "cpu", "gpus": []}}
    text = book.machine_banner(smoke, SUMMARY["notebooks"][1], "01_flops_and_moores_law")
    assert "shrinks every workload" in text
    assert "1 usable core)" in text and "no GPU or TPU" in text
    assert "stopped with an error** (cell 3: KeyError: 'x')" in text
    assert "not part of the run" in book.machine_banner(SUMMARY, None, "02_x")
    early = book.machine_banner(SUMMARY, SUMMARY["notebooks"][1], "01_x", executed=False)
    assert "failed in the run before any result was saved (cell 3: KeyError: 'x')" in early
    tpu = {**SUMMARY, "host": {"cpu": "X", "accelerator": "tpu", "gpus": [],
                               "tpu": {"chips": 4, "version": "v5e"}}}
    assert "TPU 4 x v5e" in book.machine_banner(tpu, SUMMARY["notebooks"][0])


@pytest.mark.parametrize("summary", [
    {"host": {"cpu": "Test CPU 9000", "usable_cores": 4.0, "accelerator": "gpu",
              "gpus": ["NVIDIA T4", "NVIDIA T4"], "runtime": "colab"}},
    {"machine": {"cpu": "other"},
     "hardware": {"runtime": "colab", "cpu": {"model": "Test CPU 9000", "usable_cores": 4.0},
                  "gpus": [{"name": "NVIDIA T4"}, {"name": "NVIDIA T4"}],
                  "tpu": {"chips": 0}, "accelerator": "gpu", "simulated": "colab-t4"}},
], ids=["host", "hardware report"])
def test_the_machine_is_read_from_every_form_of_summary(summary):
    text = book.machine_banner({**summary, "profile": "full", "created": "2026-01-02T03:04:05"},
                               {"status": "ok", "parameters": {}})
    assert "Test CPU 9000 (4 usable cores), 2 x NVIDIA T4" in text
    assert ("simulated: colab-t4" in text) == ("hardware" in summary)


def test_badges_become_links_and_relative_links_point_at_the_repository():
    text = book.debadge(nbs.badges_markdown("03_alexnet_on_one_gpu"))
    assert "![" not in text and "badge" not in text
    assert text.startswith("[Open in Colab](https://colab.research.google.com/github/")
    assert " · [Launch Binder](https://mybinder.org/v2/gh/" in text
    pages = {"01_a.ipynb"}
    assert book.relink("[d](../data/SOURCES.md)", "notebooks", pages) == \
        f"[d](https://github.com/{utils.REPOSITORY}/blob/main/data/SOURCES.md)"
    assert book.relink("[d](data/x.csv#L3)", "", pages).endswith("/blob/main/data/x.csv#L3)")
    for kept in ("[a](01_a.ipynb)", "[w](https://example.org/x)", "[s](#section)",
                 "![img](pic.png)"):
        assert book.relink(kept, "notebooks", pages) == kept


def test_prepared_copy_keeps_results_and_drops_noise_and_widget_state():
    source = executed_notebook("00_welcome")
    before = json.dumps(source, sort_keys=True)
    copy = book.prepare_notebook(source, "00_welcome", SUMMARY, SUMMARY["notebooks"][0],
                                 {"00_welcome.ipynb"})
    assert json.dumps(source, sort_keys=True) == before, "the source notebook was changed"
    nbformat.validate(copy)
    assert copy.cells[0].source == "# Lesson 00_welcome"
    assert copy.cells[1].source.startswith("```{admonition} Measured on Test CPU 9000")
    assert copy.cells[2].source.startswith("[Open in Colab](")
    assert "widgets" not in copy.metadata
    outputs = [o for c in copy.cells if c.cell_type == "code" for o in c.outputs]
    stderr = [o.text for o in outputs if o.get("name") == "stderr"]
    assert stderr == ["UserWarning: a real warning\n"]  # noise gone, the noise-only output too
    results = [o.data for o in outputs if "course-result" in o.get("data", {}).get("text/html", "")]
    assert len(results) == 1 and set(results[0]) == {"text/html", "text/plain"}
    texts = [o.data["text/plain"] for o in outputs if "text/plain" in o.get("data", {})]
    assert any(t.startswith("Interactive controls: years (1971 to 2023)") for t in texts)
    assert "drawn inside the widget" in texts  # what the Output widget captured is shown
    assert any(t.startswith("matmul sweep: 100% |") and t.endswith("4/4 [00:01<00:00]")
               for t in texts), texts
    assert not any("widget-view" in k for o in outputs for k in o.get("data", {}))


def test_welcome_page_has_the_course_map_where_lessons_run_and_this_run():
    readme = (f"# The Course\n\nIntro with [`data/`](data/SOURCES.md).\n\n## Start here\n\n"
              f"python3 course lab\n\n## The course map\n\n| notebook | open |\n|---|---|\n"
              f"| `00_welcome` | {nbs.badges_markdown('00_welcome')} |\n"
              f"| `01_flops_and_moores_law` | x |\n\n## Where each lesson runs\n\n"
              f"| lesson | Binder |\n|---|---|\n| 00 | yes |\n\n## Troubleshooting\n\nno\n")
    stems = ["00_welcome", "01_flops_and_moores_law", "02_gpus_and_matrix_math"]
    page = book.welcome_page(readme, SUMMARY, stems)
    assert page.startswith("# The Course\n")
    assert f"(https://github.com/{utils.REPOSITORY}/blob/main/data/SOURCES.md)" in page
    assert "## The course map" in page and "## Where each lesson runs" in page
    assert "Start here" not in page and "Troubleshooting" not in page
    assert "| [00_welcome](00_welcome.ipynb) | [Open in Colab](" in page
    assert "![" not in page
    assert "| [00_welcome](00_welcome.ipynb) | ok | 12.5 s | 321 MB |" in page
    assert "| [01_flops_and_moores_law](01_flops_and_moores_law.ipynb) | failed | 3.0 s | n/a |" \
        in page
    assert "| [02_gpus_and_matrix_math](02_gpus_and_matrix_math.ipynb) | not in this run |" in page
    assert "Test CPU 9000" in page and "`default` profile" in page


# --- what it refuses ------------------------------------------------------------------------

def test_a_run_folder_without_summary_is_refused(tmp_path: Path, capsys):
    (tmp_path / "run").mkdir()
    with pytest.raises(book.BookError, match="no summary.json.*course run --output"):
        book.read_summary(tmp_path / "run")
    with pytest.raises(book.BookError, match="no such run folder"):
        book.read_summary(tmp_path / "missing")
    (tmp_path / "run" / "summary.json").write_text("{oops")
    with pytest.raises(book.BookError, match="not valid JSON"):
        book.read_summary(tmp_path / "run")
    code = book.main(["--from", str(tmp_path / "missing"), "--output", str(tmp_path / "site")])
    assert code == 2
    assert capsys.readouterr().err.startswith("course book: ")
    assert not (tmp_path / "site").exists()


def _fake_jupyter_book(src: Path, work: Path) -> list[str]:
    html = work / "_build" / "html"
    html.mkdir(parents=True)
    (html / "index.html").write_text((src / "index.md").read_text())
    for notebook in src.glob("*.ipynb"):
        (html / f"{notebook.stem}.html").write_text(notebook.read_text())
    return []


def test_output_is_replaced_only_when_it_holds_a_book(run_dir: Path, tmp_path: Path,
                                                      monkeypatch):
    monkeypatch.setattr(book, "_jupyter_book", _fake_jupyter_book)
    sources = _tree_digest(utils.NOTEBOOKS_DIR)
    run_before = _tree_digest(run_dir)

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(book.BookError, match="not a book made by `course book`"):
        book.build_book(run_dir, foreign, log=lambda _: None)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    for protected in (utils.REPO_ROOT, utils.NOTEBOOKS_DIR, run_dir, run_dir.parent):
        with pytest.raises(book.BookError):
            book.build_book(run_dir, protected, log=lambda _: None)

    site = tmp_path / "site"
    built = book.build_book(run_dir, site, log=lambda _: None)
    assert (site / book.MARKER).is_file() and (site / ".nojekyll").is_file()
    assert built.failed == ["01_flops_and_moores_law"]
    assert built.pages == [p.stem for p in nbs.discover()]
    (site / "stale.html").write_text("from an earlier build")
    book.build_book(run_dir, site, log=lambda _: None)
    assert not (site / "stale.html").exists()
    assert _tree_digest(run_dir) == run_before, "the run folder was written to"
    assert _tree_digest(utils.NOTEBOOKS_DIR) == sources, "notebooks/ was written to"


def test_without_a_run_folder_a_smoke_run_is_made_in_a_temporary_folder(tmp_path, monkeypatch):
    """The default path: plan the smoke profile, execute it, write its summary, build from it
    (here one tiny notebook stands for the course, and Jupyter Book is faked)."""
    from utils import runner

    tiny = tmp_path / "src" / "00_tiny.ipynb"
    tiny.parent.mkdir()
    notebook = v4.new_notebook(cells=[v4.new_markdown_cell("# Tiny"),
                                      v4.new_code_cell("print(6 * 7)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, tiny)
    planned = []
    monkeypatch.setattr(runner, "plan", lambda names, profile: planned.append(profile)
                        or [runner.NotebookRun(tiny, {})])
    monkeypatch.setattr(book, "_jupyter_book", _fake_jupyter_book)
    lines: list[str] = []
    built = book.build_book(None, tmp_path / "site", log=lines.append)
    assert planned == ["smoke"] and built.run is None and built.failed == []
    page = (tmp_path / "site" / "00_tiny.html").read_text()  # the fake "renders" the copy
    assert "42" in page and "`smoke` profile" in page
    assert "00_tiny" in (tmp_path / "site" / "index.html").read_text()
    assert any("smoke profile" in line for line in lines)


# --- a real build ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[book.Book, list[str]]:
    pytest.importorskip("jupyter_book", reason=f"Jupyter Book is not installed; "
                        f"{book.INSTALL_HINT}")
    root = tmp_path_factory.mktemp("book")
    run = root / "run"
    run.mkdir()
    for entry in SUMMARY["notebooks"]:
        nbformat.write(executed_notebook(entry["notebook"]), run / f"{entry['notebook']}.ipynb")
    (run / "summary.json").write_text(json.dumps(SUMMARY))
    lines: list[str] = []
    return book.build_book(run, root / "site", log=lines.append), lines


@pytest.mark.book
@pytest.mark.timeout(600)
def test_build_renders_every_lesson_with_its_machine(site):
    built, log = site
    pages = {p.stem: p.read_text(encoding="utf-8") for p in built.site.glob("[0-9][0-9]_*.html")}
    assert sorted(pages) == built.pages == [p.stem for p in nbs.discover()]
    index = built.index.read_text(encoding="utf-8")
    assert "Test CPU 9000" in index and "00_welcome.html" in index
    for stem, page in pages.items():
        assert "course-machine" in page, f"{stem} has no machine banner"
        assert "Test CPU 9000" in page, stem
    welcome = pages["00_welcome"]
    assert '<div class="course-result">recorded for your report' in welcome
    assert "rate: 12.5 GFLOP/s" in welcome and "a real warning" in welcome
    assert "absl" not in welcome and "cuInit" not in welcome
    assert "Interactive controls: years (1971 to 2023)" in welcome
    # Colab and Binder launch buttons of the theme, for the notebook in the repository
    assert (f"https://colab.research.google.com/github/{utils.REPOSITORY}/blob/main/notebooks/"
            "00_welcome.ipynb") in welcome
    assert f"https://mybinder.org/v2/gh/{utils.REPOSITORY}/main?urlpath=lab/tree/notebooks/" \
           "00_welcome.ipynb" in welcome
    images = re.findall(r'<img[^>]+src="([^"]+)"', welcome)
    assert images and all((built.site / src).is_file() for src in images
                          if not src.startswith("http")), images
    assert "stopped with an error" in pages["01_flops_and_moores_law"]
    assert "not part of the run" in pages["02_gpus_and_matrix_math"]


@pytest.mark.book
def test_build_needs_no_network_to_view_and_warns_about_nothing_of_its_own(site):
    built, _ = site
    external = set()
    for page in built.site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        external |= set(re.findall(r'<(?:script|img|link)[^>]+(?:src|href)="(https?://[^"]+)"',
                                   text))
    assert not external, f"pages load files from the network: {sorted(external)[:5]}"
    assert (built.site / "_static" / "mathjax" / "tex-svg.js").is_file()
    ours = [w for w in built.warnings
            if re.search(r"mime|vnd\.course|widget|toc|document isn't included|not found|"
                         r"undefined label|unknown document", w, re.I)]
    assert not ours, ours
