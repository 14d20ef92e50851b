"""utils.chapter: the chapter's claims, each with a source, a verdict and a record that agrees with
the data files; check_chapter's printout; the chapter's two scaling graphs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from utils import chapter, data  # noqa: E402
from utils.errors import ArgumentError  # noqa: E402

# ---- the chapter's scaling graphs [16] and [17] ----------------------------------------------


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("number", [16, 17])
def test_chapter_graph_draws_data_with_units_ideal_line_and_caption(number, capsys):
    ax = chapter.chapter_graph(number)
    caption = capsys.readouterr().out
    assert f"graph [{number}]" in caption and "CCGrid 2017" in caption
    assert "not in a published table" in caption  # says what could not be recovered
    assert "TensorFlow's published benchmarks" in caption  # and what stands in
    assert "data/campos2017.csv and data/scaling.csv" in caption
    assert "(×" in ax.get_ylabel() and ax.get_xlabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith("ideal") for label in labels)
    ideal = next(line for line in ax.get_lines() if line.get_label().startswith("ideal"))
    assert np.array_equal(ideal.get_xdata(), ideal.get_ydata())
    stand_in = next(line for line in ax.get_lines() if line.get_label().startswith("stand-in"))
    x, y = stand_in.get_xdata(), stand_in.get_ydata()
    assert x[0] == 1 and y[0] == pytest.approx(1)
    assert np.all(np.diff(y) > 0) and np.all(y <= x + 1e-9)  # grows, never above ideal


def test_graph_16_is_the_k80_server_of_scaling_csv(capsys):
    ax = chapter.chapter_graph(16)
    capsys.readouterr()
    table = data.load("scaling")
    rows = table[(table["hardware"] == "GCE K80 (one server)") & (table["model"] == "ResNet-50")]
    stand_in = next(line for line in ax.get_lines() if line.get_label().startswith("stand-in"))
    assert list(stand_in.get_xdata()) == list(rows["devices"])
    assert list(stand_in.get_ydata()) == pytest.approx(list(rows["speedup"]), abs=0.006)


def test_graph_17_marks_the_papers_published_point(capsys):
    ax = chapter.chapter_graph(17)
    caption = capsys.readouterr().out
    paper = data.load("campos2017").set_index("quantity")["value"]
    point = next(line for line in ax.get_lines() if line.get_label().startswith("the paper"))
    assert list(point.get_xdata()) == [paper["nodes_largest_run"]]
    assert list(point.get_ydata()) == [paper["speedup_largest_run_over_one_node"]]
    assert f"{paper['speedup_largest_run_over_one_node']:g} times one server's" in caption


def test_chapter_graph_uses_the_axes_it_is_given(capsys):
    _, ax = plt.subplots()
    assert chapter.chapter_graph(17, ax=ax) is ax


@pytest.mark.parametrize("bad", [15, 0, "16", 16.0])
def test_chapter_graph_refuses_other_numbers(bad):
    with pytest.raises(ArgumentError, match="number = "):
        chapter.chapter_graph(bad)


# ---- every claim of the chapter: source, verdict, record --------------------------------------


def _tables() -> dict:
    return {name: data.load(name) for name in
            ("bsc_systems", "accelerators", "interconnects", "alexnet", "ai_compute", "top500",
             "campos2017", "chapter_claims")}


def _doubling_months(ai) -> float:
    from utils.growth import decimal_year, fit_exponential

    openai = ai[ai["source"].str.contains("OpenAI 2018")]
    return 12 * fit_exponential(decimal_year(openai["date"]), openai["training_pfs_days"]
                                ).doubling_time


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _records(t: dict) -> dict:
    """Each claim's record, computed from the data files it cites (a number, or words)."""
    bsc = t["bsc_systems"].set_index("system")
    acc = t["accelerators"].set_index("device")
    link = t["interconnects"].set_index("link")["bandwidth_gbs_per_direction"]
    alexnet = t["alexnet"].set_index("quantity")["value"]
    pfs = t["ai_compute"].set_index("model")["training_pfs_days"]
    pods = acc["pod_chips"]
    paper = t["campos2017"].set_index("quantity")["value"]
    chapter_says = t["chapter_claims"].set_index("claim")["value"]
    mn3, partial, mino, cte = (bsc.loc[name] for name in
                               ("MareNostrum 3", "MareNostrum 3 (partial)", "MinoTauro",
                                "CTE-POWER"))
    # one CTE-POWER node at TOP500's counting: 2 POWER9 (22C, 3.1 GHz, 8 FLOP/cycle) + 4 V100
    # at 6,605 GFLOP/s (data/bsc_systems.csv notes); 360 TOP500 cores = 2 x 20 + 4 x 80 SMs
    cte_node_gflops = 2 * 22 * 3.1 * 8 + 4 * 6605
    cte_nodes = round(cte["rpeak_tflops"] * 1e3 / cte_node_gflops)
    tpu = acc[acc["kind"] == "TPU"]
    chip = acc["fp16_bf16_tensor_tflops"]
    return {
        "MareNostrum in 2012": mn3["rpeak_tflops"] * 1e12,
        "MareNostrum 2012 over the Fujitsu":
            mn3["rpeak_tflops"] * 1e12 / float(chapter_says["Fujitsu computer of 1982"]),
        "MareNostrum 3 peak as written": float(chapter_says["MareNostrum 3 peak"]),
        "MareNostrum 3 servers": mn3["cores"] / 16,
        "MareNostrum 3 cores": mn3["cores"],
        "MareNostrum 3 TOP500 rank": partial["rank"],
        "TOP500 lists per year": t["top500"]["list"].dt.year.value_counts().max(),
        "AlexNet training time":
            f"{alexnet['training_days_low']:.0f}-{alexnet['training_days_high']:.0f}",
        "AlexNet GPUs": alexnet["training_gpus"] if acc.loc["GTX 580", "memory_gb"] == 3
        else None,
        "AI compute doubling time 2012-2018": _doubling_months(t["ai_compute"]),
        "AI compute growth AlexNet to AlphaGo Zero": pfs["AlphaGo Zero"] / pfs["AlexNet"],
        "Petaflop/s-day in operations": data.PFS_DAY_FLOP,
        "Graph 17: GPUs per node": paper["gpus_per_node"],
        "TPU versions": int((tpu["year"] <= 2020).sum()),
        "TPU v3 over v2": (pods["TPU v3"] * chip["TPU v3"]) / (pods["TPU v2"] * chip["TPU v2"]),
        "MinoTauro nodes": mino["cores"] / (2 * 6 + 2 * 16),
        "MinoTauro node": "2 Xeon E5649 + 2 Tesla M2090"
        if "2x Xeon E5649 6C 2.53GHz + 2x Tesla M2090 per node" in mino["architecture"]
        else mino["architecture"],
        "MinoTauro peak": mino["rpeak_tflops"] * 1e12,
        "MinoTauro installed": f"{mino['top500_list']:%B %Y} (first TOP500 list)",
        "MinoTauro in the Green500": f"{_ordinal(int(mino['green500_rank']))} in the world, "
                                     f"{mino['green500_mflops_per_watt']:,.0f} MFLOPS/W",
        "MareNostrum 3 peak": mn3["rpeak_tflops"] * 1e12,
        "CTE-POWER peak": cte["rpeak_tflops"] * 1e12,
        "CTE-POWER nodes": cte_nodes if cte["nodes"] == cte_nodes else None,
        "CTE-POWER POWER9 cores": (cte["cores"] / cte_nodes - 4 * 80) / 2,
        "CTE-POWER GPUs per node": round((cte["rpeak_tflops"] * 1e3 / cte_nodes
                                          - 2 * 22 * 3.1 * 8) / 6605),
        "V100 memory": acc.loc["Tesla V100 SXM2", "memory_gb"],
        "CTE-POWER InfiniBand": link["InfiniBand EDR (one 4x port)"] * 8,
        "V100 tensor cores": acc.loc["Tesla V100 SXM2", "tensor_cores"],
        "NVLink 2.0 link bandwidth": 2 * link["NVLink 2.0 (one link)"],
        "V100 memory bandwidth": acc.loc["Tesla V100 SXM2", "mem_bw_gbs"],
    }


def record_problems(table, tables=None) -> list[str]:
    """Claims whose record disagrees with the data file it comes from (by more than 0.1 %: a
    record carries the data's precision, not a rounding), or is not checked."""
    tables = tables or _tables()
    tables = {**tables, "chapter_claims": table}
    expected = _records(tables)
    problems = []
    for row in table.itertuples(index=False):
        cites_a_file = any(f"data/{s.filename}" in row.source for s in data.SCHEMAS.values())
        if row.claim not in expected:
            if cites_a_file:
                problems.append(f"{row.claim}: its record comes from a data file, but no test "
                                "recomputes it (add it to _records)")
            continue
        want, have = expected[row.claim], row.record_value
        if isinstance(want, str):
            ok = have == want
        else:
            number = chapter.numeric(have)
            ok = (want is not None and number is not None
                  and number == pytest.approx(float(want), rel=1e-3))
        if not ok:
            problems.append(f"{row.claim}: record_value {have!r}, the data files give {want!r}")
    return problems


def claim_problems(table) -> list[str]:
    """Claims without a source or a known verdict, or whose verdict lacks its explanation."""
    problems = []
    for row in table.itertuples(index=False):
        if not isinstance(row.source, str) or not row.source.strip():
            problems.append(f"{row.claim}: no source")
        if row.verdict not in chapter.VERDICTS:
            problems.append(f"{row.claim}: verdict {row.verdict!r} is not one of "
                            f"{chapter.VERDICTS}")
        explained = isinstance(row.explanation, str) and row.explanation.strip()
        if row.verdict in ("differs", "typo", "unverified") and not explained:
            problems.append(f"{row.claim}: a '{row.verdict}' claim needs an explanation")
        recorded = isinstance(row.record_value, str) and row.record_value.strip()
        if row.verdict in ("holds", "differs", "typo") and not recorded:
            problems.append(f"{row.claim}: '{row.verdict}' needs the record's value")
        if chapter.numeric(row.value) is not None and recorded \
                and chapter.numeric(row.record_value) is None:
            problems.append(f"{row.claim}: a numeric claim needs a numeric record")
    return problems


def lesson_problems(table) -> list[str]:
    """Claims assigned to a lesson that has no notebook."""
    import utils

    lessons = {p.name[:2] for p in utils.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")}
    return [f"{row.claim}: lesson {row.lesson!r} has no notebook"
            for row in table.itertuples(index=False) if str(row.lesson) not in lessons]


def test_every_claim_has_a_source_a_verdict_and_its_explanation():
    assert claim_problems(chapter.claims()) == []


def test_every_claim_belongs_to_an_existing_lesson():
    assert lesson_problems(chapter.claims()) == []


def test_every_record_agrees_with_the_data_files_it_comes_from():
    assert record_problems(chapter.claims()) == []


def test_the_issues_claims_are_all_there():
    names = set(chapter.claims()["claim"])
    for name in ("Fujitsu computer of 1982", "MareNostrum in 2012", "MareNostrum 3 peak",
                 "MareNostrum 3 peak as written", "MareNostrum 3 servers", "MareNostrum 3 racks",
                 "MareNostrum 3 memory", "MareNostrum 3 cores", "MareNostrum 3 TOP500 rank",
                 "Le et al. 2012 machines", "Le et al. 2012 cores", "MinoTauro nodes",
                 "MinoTauro peak", "MinoTauro in the Green500", "CUDA released",
                 "ImageNet challenge held since", "Petaflop/s-day in operations",
                 "TPU announced", "TPU versions", "TPU v3 over v2", "CTE-POWER nodes",
                 "CTE-POWER peak", "CTE-POWER racks", "NVLink 2.0 link bandwidth",
                 "AI compute doubling time 2012-2018", "AlexNet training time"):
        assert name in names


@pytest.mark.parametrize("lesson", sorted(set(data.load("chapter_claims")["lesson"])))
def test_check_chapter_prints_every_claim_of_the_lesson(lesson, capsys):
    table = data.load("chapter_claims")
    mine = table[table["lesson"] == lesson]  # filtered here, not by claims()
    returned = chapter.check_chapter(lesson)
    out = capsys.readouterr().out
    assert list(returned["claim"]) == list(mine["claim"])
    blocks = out.split("\n\n")[1:]
    assert len(blocks) == len(mine)
    for block, row in zip(blocks, mine.itertuples(index=False)):
        assert block.startswith(f"[{row.verdict}] {row.claim}\n")
        assert f"source: {row.source}" in " ".join(block.split())
        gap = chapter.difference(row.value, row.record_value)
        assert gap in block
        if row.verdict == "differs" and chapter.numeric(row.value) is not None:
            assert gap, f"{row.claim}: a numeric 'differs' prints by how much"


@pytest.mark.parametrize("chapter_value, record, expected", [
    ("1.1e15", "1.01704e15", "8.2 % above"),
    ("1.1e12", "1.1e15", "1/1,000 of"),
    ("8", "10.93", "26.8 % below"),
    ("1e20", "2e18", "50 times"),
    ("54", "54", ""),
    ("5-6", "5-6", ""),
])
def test_difference_is_computed(chapter_value, record, expected):
    text = chapter.difference(chapter_value, record)
    assert expected in text and (text == "") == (expected == "")


def test_check_chapter_refuses_a_lesson_without_claims():
    with pytest.raises(ArgumentError, match="not a lesson with chapter claims"):
        chapter.check_chapter("00")


# ---- each check above can fail ---------------------------------------------------------------


def _broken(changes: dict):
    table = data.load("chapter_claims").copy()
    for (claim, column), value in changes.items():
        table.loc[table["claim"] == claim, column] = value
    return table


@pytest.mark.parametrize("changes, message", [
    ({("CTE-POWER peak", "source"): None}, "CTE-POWER peak: no source"),
    ({("CTE-POWER peak", "verdict"): "probably"}, "verdict 'probably' is not one of"),
    ({("TPU v3 over v2", "explanation"): None}, "a 'differs' claim needs an explanation"),
    ({("MareNostrum 3 racks", "explanation"): ""}, "an explanation"),
    ({("V100 memory", "record_value"): None}, "'holds' needs the record's value"),
    ({("V100 memory", "record_value"): "sixteen"}, "a numeric claim needs a numeric record"),
])
def test_claim_problems_are_reported(changes, message):
    assert any(message in p for p in claim_problems(_broken(changes)))


def test_lesson_problems_are_reported():
    assert lesson_problems(_broken({("V100 memory", "lesson"): "09"})) == [
        "V100 memory: lesson '09' has no notebook"]


@pytest.mark.parametrize("changes, message", [
    ({("CTE-POWER peak", "record_value"): "1.5e15"}, "CTE-POWER peak: record_value '1.5e15'"),
    ({("AlexNet training time", "record_value"): "5"}, "AlexNet training time"),
    ({("MinoTauro in the Green500", "record_value"): "1st"}, "MinoTauro in the Green500"),
])
def test_record_problems_are_reported(changes, message):
    assert any(message in p for p in record_problems(_broken(changes)))


def test_a_record_that_drifts_from_its_data_file_is_reported():
    tables = _tables()
    bsc = tables["bsc_systems"].copy()
    bsc.loc[bsc["system"] == "MareNostrum 3", "rpeak_tflops"] = 1100.0
    problems = record_problems(tables["chapter_claims"], {**tables, "bsc_systems": bsc})
    assert any(p.startswith("MareNostrum 3 peak: record_value") for p in problems)


def test_an_unchecked_record_from_a_data_file_is_reported():
    table = data.load("chapter_claims").copy()
    extra = table.iloc[[0]].assign(claim="A new claim", source="data/top500.csv",
                                   record_value="1")
    problems = record_problems(__import__("pandas").concat([table, extra]))
    assert any("A new claim: its record comes from a data file" in p for p in problems)


@pytest.mark.parametrize("old, new, message", [
    (",holds,", ",probably,", r"column 'verdict': 'probably' is not one of holds, differs"),
    (",16,data/accelerators.csv (NVIDIA Tesla V100 SXM2 data sheet),holds,", ",16,,holds,",
     r"column 'source': empty, but this column needs a value"),
])
def test_the_schema_refuses_a_bad_claims_file(tmp_path, old, new, message):
    import shutil

    import utils

    shutil.copytree(utils.DATA_DIR, tmp_path / "data")
    path = tmp_path / "data" / "chapter_claims.csv"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(data.DataFileError, match=message):
        data.load("chapter_claims", tmp_path / "data")


def test_the_tensor_core_peak_is_cores_times_64_fma_times_the_clock():
    v100 = data.load("accelerators").set_index("device").loc["Tesla V100 SXM2"]
    peak = v100["tensor_cores"] * 64 * 2 * v100["boost_clock_mhz"] * 1e6 / 1e12
    assert peak == pytest.approx(v100["fp16_bf16_tensor_tflops"], rel=0.01)
