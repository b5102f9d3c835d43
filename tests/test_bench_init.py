"""``ghnctl bench init``: labelled outputs, mean ± std over seeds, results that survive a stop and a
SIGKILL, --resume that recomputes nothing finished, and the optional matplotlib extra."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ghnctl.bench import init_bench
from ghnctl.bench.events import CellDone
from ghnctl.bench.labels import NO_FINE_TUNING
from ghnctl.bench.stats import summarize
from ghnctl.bench.store import ResultStore
from test_bench_support import make_bench_env, one_error_line, run_cli
from test_finetune_support import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bench_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return make_bench_env(tmp_path, monkeypatch)


def _base(env: dict[str, Path], *extra: object) -> list[object]:
    return ["bench", "init", f"{env['nets']}:tiny", "--data", env["tree"], "-b", "8", "--device", "cpu", *extra]


def _file_init(env: dict[str, Path]) -> Path:
    """Weights of nets.py:tiny for 3 classes, as a file init (`ghnctl predict --out` would make one)."""
    from safetensors.torch import save_file

    from ghnctl.zoo import resolve_model

    path = env["tree"].parent / "w.safetensors"
    save_file(resolve_model(f"{env['nets']}:tiny", num_classes=3, seed=7).model.state_dict(), str(path))
    return path


class _CountingFinetune:
    """Stands in for ``init_bench.finetune`` and counts the fine-tuning runs (one per computed cell)."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = init_bench.finetune

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


# --------------------------------------------------------------------------------------------


def test_outputs_are_labelled_and_agree_with_the_cells(bench_env) -> None:
    weights = _file_init(bench_env)
    # matplotlib is an optional extra (ghnctl[plot]): the plot is checked where it is installed.
    plot = ["--plot", "out.png"] if importlib.util.find_spec("matplotlib") is not None else []
    result = run_cli(*_base(bench_env, "--inits", f"random,file:{weights}", "--seeds", "2", "--epochs", "2",
                            "--json", "--csv", "out.csv", "--md", "out.md", *plot))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cells_finished"] == data["cells_total"] == 4 and not data["stopped"]

    # Every row's mean ± std is that of its cells, per epoch (sample std over the 2 seeds).
    for row in data["rows"]:
        cells = [c for c in data["cells"] if c["model"] == row["model"] and c["init"] == row["init"]]
        assert sorted(c["seed"] for c in cells) == [0, 1]
        for point in row["points"]:
            values = [p["val_acc"] for c in cells for p in c["points"] if p["epoch"] == point["epoch"]]
            expected = summarize(values)
            assert point["val_acc"]["mean"] == pytest.approx(expected.mean)
            assert point["val_acc"]["std"] == pytest.approx(expected.std)
    # Labels: epoch 0 is "no fine-tuning" everywhere, and nothing else is.
    points = [p for row in data["rows"] for p in row["points"]]
    assert {p["label"] for p in points if p["epoch"] == 0} == {NO_FINE_TUNING}
    assert {p["label"] for p in points if p["epoch"] > 0} == {"fine-tuned 1 epoch", "fine-tuned 2 epochs"}
    assert all(p["steps"] == 0 for p in points if p["epoch"] == 0)

    with open("out.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert len(records) == 2 * 3  # 2 inits x 3 epochs (0, 1, 2)
    for r in records:
        assert (r["label"] == NO_FINE_TUNING) == (r["epoch"] == "0") == (r["fine_tuned"] == "False")
        assert r["n_seeds"] == "2" and r["seeds"] == "0;1"

    markdown = Path("out.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| model"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[3] == NO_FINE_TUNING
    assert columns[4].startswith("fine-tuned 1 epoch (") and columns[5].startswith("fine-tuned 2 epochs (")
    assert "sample standard deviation" in markdown
    if plot:
        assert Path("out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(ResultStore("out.results.jsonl", "init").load().cells) == 4  # beside the outputs


def test_one_seed_shows_a_dash_not_a_zero_spread(bench_env) -> None:
    result = run_cli(*_base(bench_env, "--inits", "random", "--max-steps", "2", "--md", "one.md"))
    assert result.exit_code == 0, result.stderr
    body = [line for line in Path("one.md").read_text().splitlines() if "| random |" in line]
    assert len(body) == 1 and body[0].count("±  -") == 2 and "± 0.00" not in body[0]


def test_stop_after_a_cell_then_resume_recomputes_nothing_finished(bench_env, monkeypatch) -> None:
    from ghnctl.training.data import DataConfig, load_data

    data = load_data(DataConfig(str(bench_env["tree"])))
    config = init_bench.InitBenchConfig(
        models=(f"{bench_env['nets']}:tiny", f"{bench_env['nets']}:tiny2"),
        inits=init_bench.parse_inits("random", ghn="auto", noise=0.0, orth=False),
        seeds=(0, 1), training={"batch_size": 8, "epochs": 1, "device": "cpu"},
    )
    store = ResultStore(Path("r.jsonl"), "init")
    done: list[CellDone] = []
    first = init_bench.run_init_bench(config, data, store=store, on_event=lambda e: done.append(e)
                                      if isinstance(e, CellDone) else None, stop=lambda: len(done) >= 1)
    assert first.stopped and len(first.cells) == 1 and first.total == 4
    assert len(store.load().cells) == 1

    counting = _CountingFinetune()
    monkeypatch.setattr(init_bench, "finetune", counting)
    second = init_bench.run_init_bench(config, data, store=store, resume=True)
    assert counting.calls == 3  # 4 cells, 1 already finished
    assert not second.stopped and second.reused == 1 and len(second.cells) == 4
    assert second.cells[0].to_dict() == first.cells[0].to_dict()  # read back as it was written
    assert len(store.load().cells) == 4

    again = init_bench.run_init_bench(config, data, store=store, resume=True)
    assert counting.calls == 3 and again.reused == 4

    # Another setting is another cell: a different lr recomputes everything.
    changed = init_bench.InitBenchConfig(config.models, config.inits, config.seeds,
                                         {**config.training, "lr": 0.05})
    init_bench.run_init_bench(changed, data, store=store, resume=True, stop=lambda: counting.calls >= 4)
    assert counting.calls == 4


SLOW_SECOND = """
import os
import time
from pathlib import Path

from nets import tiny


def slow_second(num_classes: int = 10):
    counter = Path(os.environ["BENCH_TEST_COUNTER"])
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    if n >= 1 and os.environ.get("BENCH_TEST_SLOW"):
        time.sleep(float(os.environ["BENCH_TEST_SLOW"]))  # the second cell waits: the test signals it here
    return tiny(num_classes)
"""


@pytest.mark.slow  # a fresh interpreter imports torch: ~10-15 s on a busy 2-core machine
def test_sigkill_keeps_finished_cells_and_resume_skips_them(bench_env, monkeypatch) -> None:
    (bench_env["tree"].parent / "slow.py").write_text(SLOW_SECOND)
    counter = bench_env["tree"].parent / "counter.txt"
    args = ["bench", "init", "slow.py:slow_second", "--data", str(bench_env["tree"]), "--inits", "random",
            "--seeds", "2", "--max-steps", "2", "-b", "8", "--device", "cpu", "--results", "k.jsonl"]
    env = {**os.environ, "BENCH_TEST_COUNTER": str(counter), "BENCH_TEST_SLOW": "300", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ghnctl", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    store = ResultStore(Path("k.jsonl"), "init")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if store.exists() and store.load().cells:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert len(store.load().cells) == 1
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    kept = store.load().cells
    assert len(kept) == 1 and not store.load().torn_tail

    counting = _CountingFinetune()
    monkeypatch.setattr(init_bench, "finetune", counting)
    monkeypatch.setenv("BENCH_TEST_COUNTER", str(counter))
    result = run_cli(*args, "--resume", "--json")
    assert result.exit_code == 0, result.stderr
    assert counting.calls == 1  # only the cell the kill interrupted
    data = json.loads(result.stdout)
    assert data["cells_reused"] == 1 and data["cells_finished"] == 2
    assert next(iter(kept.values()))["points"] == data["cells"][0]["points"]


@pytest.mark.slow  # a fresh interpreter imports torch: ~10-15 s on a busy 2-core machine
def test_ctrl_c_stops_keeps_finished_cells_and_says_how_to_continue(bench_env) -> None:
    (bench_env["tree"].parent / "slow.py").write_text(SLOW_SECOND)
    counter = bench_env["tree"].parent / "counter.txt"
    args = ["bench", "init", "slow.py:slow_second", "--data", str(bench_env["tree"]), "--inits", "random",
            "--seeds", "3", "--max-steps", "2", "-b", "8", "--device", "cpu", "--results", "c.jsonl"]
    env = {**os.environ, "BENCH_TEST_COUNTER": str(counter), "BENCH_TEST_SLOW": "4", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ghnctl", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    store = ResultStore(Path("c.jsonl"), "init")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not (store.exists() and store.load().cells):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # while the second cell's model is being built
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "stopped: 1 of 3 cells finished" in stderr and "--resume" in stderr
    assert len(store.load().cells) == 1


def test_missing_matplotlib_is_one_line_before_any_work(bench_env, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError

    def no_data(*args, **kwargs):
        raise AssertionError("data loaded before the matplotlib check")

    monkeypatch.setattr("ghnctl.training.data.load_data", no_data)
    result = run_cli(*_base(bench_env, "--inits", "random", "--plot", "p.png"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "matplotlib" in line and "pip install 'ghnctl[plot]'" in line
    assert not Path("p.results.jsonl").exists() and not Path("p.png").exists()


def test_existing_results_need_resume_or_force(bench_env) -> None:
    args = _base(bench_env, "--inits", "random", "--max-steps", "1", "--results", "r.jsonl")
    assert run_cli(*args).exit_code == 0
    refused = run_cli(*args)
    assert refused.exit_code == 2
    assert "already holds 1 finished cell" in one_error_line(refused) and "--resume" in refused.stderr
    assert run_cli(*args, "--force").exit_code == 0  # starts over
    assert len(ResultStore("r.jsonl", "init").load().cells) == 1
    assert run_cli(*args, "--csv", "r.jsonl", "--force").exit_code == 2  # two outputs, one file


def test_ghn_init_is_finetunes_and_the_graph_is_built_once(bench_env, monkeypatch) -> None:
    """The GHN cells start from exactly what `ghnctl finetune --init ghn` starts from, with the
    GHN loaded once and each model's graph built once for all seeds."""
    import ghnctl.graph
    from ghnctl.inits import InitSpec, apply_init
    from ghnctl.zoo import resolve_model

    builds = []
    real_build = ghnctl.graph.build_graph
    monkeypatch.setattr(ghnctl.graph, "build_graph", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    spec = f"{bench_env['nets']}:tiny"
    init = InitSpec("ghn", ghn=str(bench_env["ghn"]), noise=1e-5)
    initializer = init_bench._Initializer(init_bench.GhnCache(), lambda event: None)
    mine = []
    for seed in (0, 1, 2):
        built = resolve_model(spec, num_classes=3, image_size=32, seed=seed)
        initializer.apply(built, init, 3, seed)
        mine.append(built.model.state_dict())
    assert len(builds) == 1
    assert len(initializer.ghns._loaded) == 1
    monkeypatch.undo()

    for seed, state in zip((0, 1, 2), mine):
        reference = resolve_model(spec, num_classes=3, image_size=32, seed=seed).model
        apply_init(reference, init, 3, seed=seed)  # what `ghnctl finetune --init ghn` does
        for (name, value), expected in zip(state.items(), reference.state_dict().values()):
            assert torch.equal(value, expected), name
    assert not torch.equal(mine[0]["0.weight"], mine[1]["0.weight"])  # the seed reaches the noise


def test_ghn_options_without_a_ghn_init_are_refused(bench_env) -> None:
    for extra in (["--ghn", "x.pt"], ["--noise", "0.1"], ["--orth"]):
        result = run_cli(*_base(bench_env, "--inits", "random", *extra))
        assert result.exit_code == 2, extra
        assert f"{extra[0]} " in one_error_line(result)
    named = run_cli(*_base(bench_env, "--inits", f"ghn:{bench_env['ghn']}", "--ghn", "other.pt"))
    assert named.exit_code == 2 and "ghn:SPEC" in named.stderr
