"""``ghnctl.bench`` pure parts: mean ± sample std, labels, tables, Markdown/CSV, the results file,
architecture lists, the published-norm check. No torch model is built here."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics

import pytest

from ghnctl.bench import reference
from ghnctl.bench.archs import parse_archs
from ghnctl.bench.export import to_csv, to_markdown
from ghnctl.bench.init_bench import EpochPoint, InitCell, aggregate, parse_inits, parse_seeds
from ghnctl.bench.labels import NO_FINE_TUNING, epoch_label
from ghnctl.bench.stats import format_mean_std, summarize
from ghnctl.bench.store import ResultStore, cell_key
from ghnctl.errors import UsageError


def _cell(model: str, init: str, seed: int, accs: list[float], steps_per_epoch: int = 4) -> InitCell:
    points = tuple(
        EpochPoint(epoch=e, steps=e * steps_per_epoch, partial=False, label=epoch_label(e, e * steps_per_epoch),
                   val_acc=a, val_loss=1.0 / (1 + a), train_loss=None, train_acc=None)
        for e, a in enumerate(accs)
    )
    return InitCell(key=f"{model}-{init}-{seed}", model=model, arch=model, init=init, seed=seed, points=points,
                    lr=0.1, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * (len(accs) - 1),
                    wall_s=1.0)


# --------------------------------------------------------------------------------------------
# aggregation


def test_mean_and_sample_std_over_seeds() -> None:
    s = summarize([10.0, 20.0, 40.0])
    assert s.n == 3
    assert s.mean == pytest.approx(70.0 / 3)
    # The sample standard deviation (n - 1), not the population one (n).
    assert s.std == pytest.approx(math.sqrt(((10 - 70 / 3) ** 2 + (20 - 70 / 3) ** 2 + (40 - 70 / 3) ** 2) / 2))
    assert s.std != pytest.approx(statistics.pstdev([10.0, 20.0, 40.0]))
    assert format_mean_std(s) == f"{70 / 3:.2f} ± {s.std:.2f}"


def test_one_seed_shows_no_spread_rather_than_zero() -> None:
    s = summarize([42.0])
    assert s.std is None
    assert format_mean_std(s) == "42.00 ±  -"
    assert format_mean_std(summarize([])) == "-"
    assert summarize([1.0, None, float("nan")]).n == 1  # failed evaluations are no number


def test_aggregate_groups_model_init_and_keeps_per_epoch_values() -> None:
    cells = [
        _cell("a", "random", 0, [10.0, 30.0, 50.0]),
        _cell("a", "random", 1, [12.0, 34.0, 58.0]),
        _cell("a", "ghn", 0, [20.0, 40.0, 60.0]),
    ]
    rows = aggregate(cells)
    assert [(r.model, r.init, r.seeds) for r in rows] == [("a", "random", (0, 1)), ("a", "ghn", (0,))]
    random_row = rows[0]
    assert [p.acc.mean for p in random_row.points] == [11.0, 32.0, 54.0]
    assert random_row.points[2].acc.std == pytest.approx(statistics.stdev([50.0, 58.0]))
    assert random_row.points[2].acc.values == (50.0, 58.0)
    assert rows[1].points[1].acc.std is None


# --------------------------------------------------------------------------------------------
# labels


def test_epoch_zero_is_never_called_fine_tuned() -> None:
    assert epoch_label(0, 0) == NO_FINE_TUNING
    assert epoch_label(0, 17, partial=True) == NO_FINE_TUNING  # whatever else the record claims
    assert epoch_label(1, 4) == "fine-tuned 1 epoch"
    assert epoch_label(3, 12) == "fine-tuned 3 epochs"
    assert epoch_label(3, 10, partial=True) == "fine-tuned 3 epochs (partial, 10 steps)"


def test_a_stored_label_cannot_rename_the_epoch_zero_column() -> None:
    record = _cell("a", "ghn", 0, [10.0, 30.0]).to_dict()
    record["points"][0]["label"] = "fine-tuned 0 epochs"  # a hand-edited results file
    assert InitCell.from_dict(record).points[0].label == NO_FINE_TUNING


# --------------------------------------------------------------------------------------------
# exports


def test_markdown_and_csv() -> None:
    from ghnctl.bench.table import Table

    table = Table("t", ("model", "acc"), (("a|b", "1.00 ±  -"),), (False, True), notes=("note",))
    text = to_markdown(table, "ghnctl bench init a")
    assert "```bash\nghnctl bench init a\n```" in text
    assert "| a\\|b | 1.00 ±  - |" in text and "|---|---:|" in text and "* note" in text
    rows = list(csv.reader(io.StringIO(to_csv(("x", "y", "z"), [{"x": 1.5, "y": None, "z": [1, 2]}]))))
    assert rows == [["x", "y", "z"], ["1.5", "", "1;2"]]


# --------------------------------------------------------------------------------------------
# results file


def test_store_appends_reads_back_and_cuts_a_torn_last_line(tmp_path) -> None:
    store = ResultStore(tmp_path / "r.jsonl", "init")
    store.append({"key": "k1", "x": 1})
    store.append({"key": "k2", "x": 2})
    with open(store.path, "a") as f:
        f.write('{"format": "ghnctl-bench/1", "bench": "init", "key": "k3", "x"')  # the writer died here
    loaded = store.load()
    assert set(loaded.cells) == {"k1", "k2"} and loaded.torn_tail
    assert store.path.read_text().endswith("\n")  # cut, so the next append starts a clean line
    store.append({"key": "k3", "x": 3})
    assert set(store.load().cells) == {"k1", "k2", "k3"}
    lines = [json.loads(line) for line in store.path.read_text().splitlines()]
    assert [r["key"] for r in lines] == ["k1", "k2", "k3"]


def test_store_refuses_another_bench_kind(tmp_path) -> None:
    ResultStore(tmp_path / "r.jsonl", "ghn").append({"key": "k"})
    with pytest.raises(UsageError, match="bench 'ghn'"):
        ResultStore(tmp_path / "r.jsonl", "init").load()


def test_cell_key_depends_on_every_setting() -> None:
    base = {"model": "resnet18", "init": {"kind": "random"}, "seed": 0, "finetune": {"lr": 0.1}}
    assert cell_key(base) == cell_key(dict(reversed(list(base.items()))))
    assert cell_key(base) != cell_key({**base, "seed": 1})
    assert cell_key(base) != cell_key({**base, "finetune": {"lr": 0.2}})


# --------------------------------------------------------------------------------------------
# parsing


def test_parse_seeds_and_inits() -> None:
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("2", first=5) == (5, 6)
    assert parse_seeds("0,4,7") == (0, 4, 7)
    assert parse_seeds("9,") == (9,)
    for bad in ("0", "x", "1,1", "-1,2"):
        with pytest.raises(UsageError):
            parse_seeds(bad)
    inits = parse_inits("ghn, random, file:w.safetensors, ghn:other.pt", ghn="ghn3tm8", noise=0.0, orth=False)
    assert [i.label for i in inits] == ["ghn:ghn3tm8", "random", "file:w.safetensors", "ghn:other.pt"]
    with pytest.raises(UsageError, match="twice"):
        parse_inits("random,random", ghn="auto", noise=0.0, orth=False)


def test_parse_archs_lists_files_and_deepnets(tmp_path) -> None:
    (tmp_path / "nets.py").write_text("")
    listing = tmp_path / "archs.txt"
    listing.write_text("# my set\nresnet18\n\nnets.py:tiny   # beside the list\nresnet18\n")
    assert parse_archs(f"@{listing}") == ("resnet18", f"{tmp_path / 'nets.py'}:tiny")
    assert parse_archs("resnet18, resnet50") == ("resnet18", "resnet50")
    assert parse_archs("deepnets:test", n=3) == ("deepnets:test/0", "deepnets:test/1", "deepnets:test/2")
    assert parse_archs("deepnets:wide@1,resnet18", n=2) == ("deepnets:wide/0@1", "deepnets:wide/1@1", "resnet18")
    with pytest.raises(UsageError):
        parse_archs("deepnets:nosuchsplit")
    with pytest.raises(UsageError, match="does not exist"):
        parse_archs(f"@{tmp_path / 'missing.txt'}")


# --------------------------------------------------------------------------------------------
# published norms


def test_published_norm_check() -> None:
    # resnet50 with GHN-3-XL: the number of the official ghn3_results.json.
    check = reference.check_norm("ghn3xlm16", "resnet50", 108.4530 + 0.004)
    assert check is not None and check.ok and check.published == 108.4530
    assert not reference.check_norm("ghn3tm8", "resnet50", 78.6197 + 0.05).ok
    assert reference.check_norm("ghn3tm8", "not_a_torchvision_model", 1.0) is None
    assert reference.check_norm("ghn2_imagenet", "resnet50", 1.0) is None
    assert len(reference.PARAM_NORMS) == 74
    # An official name with another size is not the official checkpoint.
    assert reference.official_name("ghn3tm8", hid=64, layers=3) == "ghn3tm8"
    assert reference.official_name("ghn3tm8.pt", hid=32, layers=2) is None
