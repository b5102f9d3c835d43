"""``ghnctl graph``: summary, JSON, --list, model specs, output-file safety and error lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ghnctl import zoo


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def no_model_build(monkeypatch):
    """Fail the test if a model gets built: output checks must come before the expensive work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was built before the output path was checked")

    monkeypatch.setattr(zoo, "resolve_model", refuse)


# ------------------------------------------------------------------------------------------------
# errors


def test_unknown_model_suggests_names(cli) -> None:
    result = cli("graph", "resnt50")
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert line.startswith("error: unknown model 'resnt50' (did you mean resnet50")
    assert result.stdout == ""


def test_unknown_model_without_close_match_points_to_list(cli) -> None:
    result = cli("graph", "qqqqqq")
    assert result.exit_code == 2
    assert "--list" in _one_error_line(result)


def test_missing_model_is_a_usage_error(cli) -> None:
    result = cli("graph", "--json")
    assert result.exit_code == 2
    assert "missing MODEL" in _one_error_line(result)


def test_forward_failure_names_model_and_image_size(cli) -> None:
    result = cli("graph", "vit_b_16", "--image-size", "32")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "vit_b_16" in line
    assert "--image-size" in line
    assert result.stdout == ""


def test_existing_out_is_refused_and_untouched(cli, tmp_path, no_model_build) -> None:
    out = tmp_path / "graph.svg"
    out.write_text("keep me")
    result = cli("graph", "resnet18", "--out", out)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "already exists" in line
    assert "--force" in line
    assert out.read_text() == "keep me"


def test_default_picture_name_is_checked_too(cli, tmp_path, monkeypatch, no_model_build) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet18.svg").write_text("keep me")
    result = cli("graph", "resnet18", "--render")
    assert result.exit_code == 1
    assert "'resnet18.svg' already exists" in _one_error_line(result)
    assert (tmp_path / "resnet18.svg").read_text() == "keep me"


@pytest.mark.parametrize("where", ["missing-dir", "parent-is-file", "is-a-dir"])
def test_unwritable_out_is_a_clear_error(cli, tmp_path, no_model_build, where: str) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.svg").mkdir()
    out = {
        "missing-dir": tmp_path / "nope" / "g.svg",
        "parent-is-file": tmp_path / "afile" / "g.svg",
        "is-a-dir": tmp_path / "adir.svg",
    }[where]
    result = cli("graph", "resnet18", "--out", out, "--force")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert str(out) in line or str(out.parent) in line
    assert "cannot write" in line or "is a directory" in line


def test_unknown_picture_format_is_a_usage_error(cli, tmp_path, no_model_build) -> None:
    result = cli("graph", "resnet18", "--out", tmp_path / "g.txt")
    assert result.exit_code == 2
    assert ".svg" in _one_error_line(result)


# ------------------------------------------------------------------------------------------------
# results


def test_summary_on_stderr(cli) -> None:
    result = cli("graph", "resnet18")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # tables are for people: stderr
    text = result.stderr
    assert "resnet18" in text
    assert "nodes" in text and "edges" in text and "depth" in text
    for op in ("conv", "bn", "sum", "glob_avg"):
        assert op in text
    assert "in the graph (predicted)" in text
    assert "not in the graph" in text


def test_summary_shows_uncovered_parameters_as_warnings(cli) -> None:
    result = cli("graph", "convnext_tiny")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr
    assert "layer_scale" in result.stderr


def test_json_output(cli) -> None:
    result = cli("graph", "resnet18", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("arch", "num_nodes", "num_edges", "nodes", "edges", "warnings"):
        assert key in data
    assert data["arch"] == "resnet18"
    assert data["num_nodes"] == len(data["nodes"])
    assert data["num_edges"] == len(data["edges"])
    for node in data["nodes"]:
        assert {"id", "op", "param", "shape"} <= node.keys()
    assert [n["id"] for n in data["nodes"]] == list(range(data["num_nodes"]))
    assert data["nodes"][0]["op"] == "input"
    assert all(len(e) == 2 and 0 <= e[0] < e[1] < data["num_nodes"] for e in data["edges"])
    assert data["image_size"][-1] == 224
    assert data["num_classes"] == 1000
    assert data["params"]["covered"]["numel"] == 11_689_512  # every resnet18 parameter
    assert data["params"]["not_covered"] == {"count": 0, "numel": 0}


def test_json_matches_the_official_graph(cli, shared_dir: Path) -> None:
    golden = json.loads((shared_dir / "golden" / "graph__resnet18__c10.json").read_text())
    result = cli("graph", "resnet18", "--num-classes", "10", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["num_nodes"] == golden["n_nodes"]
    assert data["num_edges"] == golden["n_edges"]
    assert [n["op"] for n in data["nodes"]] == [n["op"] for n in golden["nodes"]]
    assert [n["param"] for n in data["nodes"]] == [n["param"] for n in golden["nodes"]]


def test_image_size_default_for_inception(cli) -> None:
    result = cli("graph", "inception_v3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["image_size"][-1] == 299


def test_list_filters_names(cli) -> None:
    result = cli("graph", "--list", "res")
    assert result.exit_code == 0
    assert "resnet50" in result.stderr
    assert "vit_b_16" not in result.stderr


def test_list_json(cli) -> None:
    result = cli("graph", "--list", "vit*", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["models"] == ["vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32"]


def test_list_everything(cli) -> None:
    result = cli("graph", "--list", "--json")
    models = json.loads(result.stdout)["models"]
    assert {"resnet50", "vit_b_16", "convnext_tiny", "inception_v3"} <= set(models)
    assert not any("rcnn" in m for m in models)  # classification models only


def test_file_factory_spec(cli, tiny_model_file: Path) -> None:
    result = cli("graph", f"{tiny_model_file}:tiny_net", "--num-classes", "3", "--image-size", "32", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["arch"] == "tiny_net"
    assert data["source"] == "file"
    assert data["image_size"][-1] == 32
    params = {n["param"]: n["shape"] for n in data["nodes"] if n["param"]}
    assert params["5.weight"] == [3, 8]  # --num-classes reached the factory


def test_module_factory_spec_from_current_directory(cli, tiny_model_package: Path, monkeypatch) -> None:
    monkeypatch.chdir(tiny_model_package)  # like `python -m`: the current directory is importable
    result = cli("graph", "tinypkg.nets:tiny_net", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["arch"] == "tiny_net"
    assert data["source"] == "module"


def test_end_to_end_in_a_fresh_process(run_ghnctl, tiny_model_file: Path) -> None:
    proc = run_ghnctl("graph", f"{tiny_model_file}:tiny_net", "--image-size", "32", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["num_nodes"] > 3


# ------------------------------------------------------------------------------------------------
# pictures (ghnctl.graph.render)


def test_render_writes_dot(cli, tmp_path, tiny_model_file: Path) -> None:
    out = tmp_path / "tiny.dot"
    result = cli("graph", f"{tiny_model_file}:tiny_net", "--image-size", "32", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith(("digraph", "strict digraph"))
    assert str(out) in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_render_default_name_and_force(cli, tmp_path, monkeypatch, tiny_model_file: Path) -> None:
    monkeypatch.chdir(tmp_path)
    spec = f"{tiny_model_file}:tiny_net"
    result = cli("graph", spec, "--image-size", "32", "--render")
    assert result.exit_code == 0, result.output
    picture = tmp_path / "tiny_net.svg"
    assert "<svg" in picture.read_text()

    picture.write_text("old")
    assert cli("graph", spec, "--image-size", "32", "--render").exit_code == 1
    assert picture.read_text() == "old"
    result = cli("graph", spec, "--image-size", "32", "--render", "--force", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["picture"] == "tiny_net.svg"
    assert "<svg" in picture.read_text()


def test_unknown_engine_is_refused_before_building(cli, tmp_path, no_model_build) -> None:
    result = cli("graph", "resnet18", "--out", tmp_path / "g.svg", "--engine", "gimp")
    assert result.exit_code == 2
    assert "gimp" in _one_error_line(result)


def test_graph_notes_only_with_debug(cli) -> None:  # noqa: ANN001 - the conftest fixture
    quiet = cli("graph", "vit_b_16")
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr and "class_token" in quiet.stderr
    loud = cli("graph", "vit_b_16", "--debug")
    assert loud.exit_code == 0 and "note: encoder.pos_embedding" in loud.stderr.replace("\n", " ")
