"""``ghnctl bench ghn`` and ``ghnctl bench speed``: zero-shot rows and summaries, the split named,
work done once per architecture, norms without data, and timings with their memory method."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from ghnctl.bench import ghn_bench, memory, reference
from ghnctl.bench.speed import SpeedConfig, run_speed
from test_bench_support import make_bench_env, one_error_line, run_cli, tiny_ghn
from test_finetune_support import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bench_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return make_bench_env(tmp_path, monkeypatch)


def test_zero_shot_rows_summary_and_split(bench_env) -> None:
    second = tiny_ghn(Path("second.safetensors"))
    listing = Path("archs.txt")
    listing.write_text("nets.py:tiny\nnets.py:tiny2  # two convs\n")
    result = run_cli("bench", "ghn", "--ghn", f"{bench_env['ghn']},{second}", "--archs", f"@{listing}",
                     "--data", bench_env["tree"], "--device", "cpu", "--json", "--md", "g.md", "--csv", "g.csv")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["zero_shot"] and data["split"] == "split"
    assert "held out from train" in data["evaluated_on"]
    assert len(data["rows"]) == 4 and all(r["error"] is None for r in data["rows"])
    for summary in data["summary"]:
        top1 = [r["top1"] for r in data["rows"] if r["ghn"] == summary["ghn"]]
        assert summary["top1"]["mean"] == pytest.approx(statistics.fmean(top1))
        assert summary["top1"]["median"] == pytest.approx(statistics.median(top1))
        assert summary["top1"]["max"] == max(top1)
        assert summary["architectures"] == 2 and summary["failed"] == 0
    assert all(r["norm"] > 0 and r["images"] == 3 for r in data["rows"])
    markdown = Path("g.md").read_text()
    assert "zero-shot (no fine-tuning)" in markdown and "held out from train" in markdown
    assert "fine-tuned" not in markdown.replace("no fine-tuning", "")


def test_data_ghns_loader_and_graphs_are_made_once(bench_env, monkeypatch) -> None:
    import ghnctl.graph
    import ghnctl.training.loaders
    from ghnctl.training.data import DataConfig, load_data

    calls = {"graph": 0, "loader": 0}
    real_graph, real_loader = ghnctl.graph.build_graph, ghnctl.training.loaders.eval_loader

    def graph(*args, **kwargs):
        calls["graph"] += 1
        return real_graph(*args, **kwargs)

    def loader(*args, **kwargs):
        calls["loader"] += 1
        return real_loader(*args, **kwargs)

    monkeypatch.setattr(ghnctl.graph, "build_graph", graph)
    monkeypatch.setattr(ghnctl.training.loaders, "eval_loader", loader)
    second = tiny_ghn(Path("second.safetensors"))
    config = ghn_bench.GhnBenchConfig(ghns=(str(bench_env["ghn"]), str(second)),
                                      archs=("nets.py:tiny", "nets.py:tiny2", "nets.py:tiny"), device="cpu")
    assert config.archs == ("nets.py:tiny", "nets.py:tiny2")  # a repeated architecture is benched once
    result = ghn_bench.run_ghn_bench(config, load_data(DataConfig(str(bench_env["tree"]))))
    assert len(result.rows) == 4
    assert calls == {"graph": 2, "loader": 1}  # one graph per architecture, not per GHN; one eval loader


def test_without_data_only_norms_and_a_class_mismatch_is_refused(bench_env) -> None:
    result = run_cli("bench", "ghn", "--ghn", bench_env["ghn"], "--archs", "nets.py:tiny", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["data"] is None and data["split"] is None and data["rows"][0]["top1"] is None
    assert data["rows"][0]["norm"] > 0 and data["rows"][0]["num_classes"] == 3  # the GHN's classes

    ten = tiny_ghn(Path("ten.safetensors"), num_classes=10)
    refused = run_cli("bench", "ghn", "--ghn", ten, "--archs", "nets.py:tiny", "--data", bench_env["tree"],
                      "--device", "cpu", "--results", "x.jsonl")
    assert refused.exit_code == 2
    assert "predicts 10 classes and the data has 3" in one_error_line(refused)
    assert not Path("x.jsonl").exists()


def test_a_model_that_fails_is_a_row_not_the_end(bench_env) -> None:
    Path("broken.py").write_text("def broken(num_classes=10):\n    raise RuntimeError('no such layer')\n")
    result = run_cli("bench", "ghn", "--ghn", bench_env["ghn"], "--archs", "broken.py:broken,nets.py:tiny",
                     "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert "no such layer" in rows[0]["error"] and rows[1]["error"] is None
    assert json.loads(result.stdout)["summary"][0]["failed"] == 1


def test_norm_check_runs_only_where_the_published_numbers_apply(monkeypatch) -> None:
    """The official GHN-3 norms are for 1000-class torchvision models: nothing else is compared."""
    monkeypatch.setitem(reference.PARAM_NORMS, "tiny", (1.0, 2.0))
    base = ghn_bench.GhnRow("k", "ghn3tm8", "tiny", "tiny", 1000, 224)
    check = ghn_bench.norm_check(base, "ghn3tm8", "torchvision", 1.004)
    assert check is not None and check.ok and check.published == 1.0
    assert not ghn_bench.norm_check(base, "ghn3tm8", "torchvision", 1.02).ok
    assert ghn_bench.norm_check(base, None, "torchvision", 1.0) is None  # not an official checkpoint
    assert ghn_bench.norm_check(base, "ghn3tm8", "file", 1.0) is None  # a user's model named like one
    ten = ghn_bench.GhnRow("k", "ghn3tm8", "tiny", "tiny", 10, 32)
    assert ghn_bench.norm_check(ten, "ghn3tm8", "torchvision", 1.0) is None  # another classifier


# --------------------------------------------------------------------------------------------
# bench speed


def test_speed_medians_runs_and_memory(bench_env) -> None:
    config = SpeedConfig(ghns=(str(bench_env["ghn"]),), archs=("nets.py:tiny",), repeats=3, warmup=1,
                         device="cpu")
    result = run_speed(config)
    (row,) = result.rows
    assert row.error is None and row.nodes > 0
    assert len(row.graph_runs_s) == 3 and len(row.predict_runs_s) == 3  # the warm-up run is not kept
    assert row.graph_s == statistics.median(row.graph_runs_s)
    assert row.predict_s == statistics.median(row.predict_runs_s)
    assert row.peak_rss_mb is not None and row.peak_rss_mb > 0
    assert result.memory_method in (memory.VMHWM, memory.GETRUSAGE)

    cli = run_cli("bench", "speed", "--ghn", bench_env["ghn"], "--archs", "nets.py:tiny", "--repeats", "2",
                  "--device", "cpu", "--json")
    assert cli.exit_code == 0, cli.stderr
    assert json.loads(cli.stdout)["rows"][0]["predict_runs_s"].__len__() == 2


def test_peak_memory_sees_a_block_s_own_allocation() -> None:
    with memory.PeakMemory() as first:
        big = np.ones(60 * 1024 * 1024 // 8)  # 60 MB, touched
        del big
    if first.method != memory.VMHWM:
        pytest.skip("the per-measurement peak needs Linux's /proc/self/clear_refs")
    assert first.rss_increase_mb is not None and first.rss_increase_mb > 40
    with memory.PeakMemory() as second:
        small = np.ones(1024)
        del small
    # Reset between measurements: the earlier 60 MB peak does not leak into this one.
    assert second.rss_increase_mb is not None and second.rss_increase_mb < 20


def test_the_norm_is_the_official_quantity(shared_dir: Path) -> None:
    """The norm ``bench ghn`` reports is what the official code reports for the same GHN and model
    (``total_param_norm`` of the golden files, made with the official code), to its 1e-2 tolerance."""
    golden = json.loads((shared_dir / "golden" / "ghn3-tiny-c1000__resnet18.json").read_text())
    config = ghn_bench.GhnBenchConfig(ghns=(str(shared_dir / "golden" / "ghn3-tiny-c1000.pt"),),
                                      archs=("resnet18",), device="cpu")
    (row,) = ghn_bench.run_ghn_bench(config, None).rows
    assert row.num_classes == 1000 and row.image_size == 224
    assert abs(row.norm - golden["total_param_norm"]) < reference.NORM_TOLERANCE


def test_ghn_bench_resumes_without_predicting_finished_cells(bench_env, monkeypatch) -> None:
    import ghnctl.predict
    from ghnctl.bench.events import CellDone
    from ghnctl.bench.store import ResultStore

    config = ghn_bench.GhnBenchConfig(ghns=(str(bench_env["ghn"]),), archs=("nets.py:tiny", "nets.py:tiny2"),
                                      device="cpu")
    store = ResultStore(Path("g.jsonl"), "ghn")
    done: list[CellDone] = []
    first = ghn_bench.run_ghn_bench(config, None, store=store, stop=lambda: bool(done),
                                    on_event=lambda e: done.append(e) if isinstance(e, CellDone) else None)
    assert first.stopped and len(first.rows) == 1

    calls = []
    real = ghnctl.predict.predict_parameters
    monkeypatch.setattr(ghnctl.predict, "predict_parameters", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = ghn_bench.run_ghn_bench(config, None, store=store, resume=True)
    assert len(calls) == 1 and second.reused == 1 and len(second.rows) == 2 and not second.stopped
    assert second.rows[0].norm == first.rows[0].norm
