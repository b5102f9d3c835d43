"""Tests for ghnctl.graph.render and ghnctl.graph.layout (pictures of GHN graphs)."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from ghnctl.errors import MissingExtra, OutputNotWritable, UsageError
from ghnctl.graph import layout as layout_mod
from ghnctl.graph import render
from ghnctl.graph.layout import assign_layers, layered_layout, suggest_columns, wrap_columns
from ghnctl.graph.model import GhnGraph, Node
from ghnctl.graph.render import (
    build_scene,
    collapse_view,
    node_label,
    png_scale,
    render_graph,
    scene_to_svg,
    to_dot,
)
from ghnctl.graph.render import graphviz as graphviz_mod

SVG_NS = "{http://www.w3.org/2000/svg}"
HAS_DOT = shutil.which("dot") is not None


# --------------------------------------------------------------------------------------------
# Graph builders
# --------------------------------------------------------------------------------------------


def make_graph(arch: str, nodes: list[dict], edges: list[tuple[int, int]]) -> GhnGraph:
    """A GhnGraph from golden-style node dicts ({op, param, name, shape}) and 1-hop edges.

    Only ``dist == 1`` matters for rendering, so longer distances are left at 0.
    """
    built = [
        Node(
            i,
            n["op"],
            n.get("name") or n.get("param") or n["op"],
            n.get("param"),
            tuple(n["shape"]) if n.get("shape") else None,
        )
        for i, n in enumerate(nodes)
    ]
    dist = torch.zeros(len(built), len(built), dtype=torch.long)
    for a, b in edges:
        dist[a, b] = 1
    return GhnGraph(arch, built, dist)


def toy_resnet(blocks: int = 3, stages: int = 1) -> GhnGraph:
    """Stem, ``stages`` x ``blocks`` identical residual blocks (conv-bn-conv-bn-sum), head."""
    nodes: list[dict] = [
        {"op": "input", "name": "input"},
        {"op": "conv", "param": "conv1.weight", "shape": [16, 3, 3, 3]},
        {"op": "bn", "param": "bn1.weight", "shape": [16]},
    ]
    edges = [(0, 1), (1, 2)]
    prev = 2
    for s in range(1, stages + 1):
        for b in range(blocks):
            base = len(nodes)
            pre = f"layer{s}.{b}."
            nodes += [
                {"op": "conv", "param": pre + "conv1.weight", "shape": [16, 16, 3, 3]},
                {"op": "bn", "param": pre + "bn1.weight", "shape": [16]},
                {"op": "conv", "param": pre + "conv2.weight", "shape": [16, 16, 3, 3]},
                {"op": "bn", "param": pre + "bn2.weight", "shape": [16]},
                {"op": "sum", "name": "AddBackward0"},
            ]
            edges += [
                (prev, base),
                (base, base + 1),
                (base + 1, base + 2),
                (base + 2, base + 3),
                (base + 3, base + 4),
                (prev, base + 4),
            ]
            prev = base + 4
    head = len(nodes)
    nodes += [
        {"op": "glob_avg", "name": "MeanBackward1"},
        {"op": "conv", "param": "fc.weight", "shape": [10, 16]},
        {"op": "bias", "param": "fc.bias", "shape": [10]},
    ]
    edges += [(prev, head), (head, head + 1), (head + 1, head + 2)]
    return make_graph("toy_resnet", nodes, edges)


def golden_graph(shared_dir: Path, arch: str, classes: int = 1000) -> GhnGraph:
    """The official graph of ``arch`` from the golden files (``shared_dir`` skips when absent)."""
    path = shared_dir / "golden" / f"graph__{arch}__c{classes}.json"
    if not path.is_file():
        pytest.skip(f"golden graph {path.name} not found")
    data = json.loads(path.read_text())
    return make_graph(arch, data["nodes"], [tuple(e) for e in data["edges"]])


def svg_groups(svg: str, cls: str) -> list[ET.Element]:
    root = ET.fromstring(svg.encode())
    return [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == cls]


def dot_edges(text: str) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in re.findall(r"n(\d+) -> n(\d+);", text)}


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------


def test_dot_text_has_every_edge(tmp_path: Path) -> None:
    g = toy_resnet()
    out = render_graph(g, tmp_path / "g.dot", collapse=False)
    text = out.read_text()
    assert text.startswith("digraph")
    assert dot_edges(text) == set(g.edges)
    assert len(re.findall(r"^\s+n\d+ \[", text, flags=re.M)) == g.num_nodes
    assert 'tooltip="layer1.0.conv1.weight' in text


def test_svg_is_valid_with_a_node_per_graph_node_and_a_legend(tmp_path: Path) -> None:
    g = toy_resnet()
    out = render_graph(g, tmp_path / "g.svg", engine="python", collapse=False)
    svg = out.read_text()
    nodes = svg_groups(svg, "node")
    assert len(nodes) == g.num_nodes
    assert {n.get("id") for n in nodes} == {f"n{i}" for i in range(g.num_nodes)}
    titles = [n.find(f"{SVG_NS}title").text for n in nodes]  # type: ignore[union-attr]
    assert any(t.startswith("layer1.2.conv2.weight") and "(16, 16, 3, 3)" in t for t in titles)
    entries = svg_groups(svg, "legend-entry")
    assert {e.get("id") for e in entries} == {f"legend-{op}" for op in g.op_histogram()}
    assert "toy_resnet" in svg and f"{g.num_nodes} nodes" in svg and f"{g.num_edges} edges" in svg
    assert len(svg_groups(svg, "edges")[0]) == g.num_edges


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-")])
def test_raster_formats_have_their_magic_bytes(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = render_graph(toy_resnet(), tmp_path / f"g{suffix}", engine="python")
    data = out.read_bytes()
    assert data.startswith(magic)
    if suffix == ".pdf":
        assert data.rstrip().endswith(b"%%EOF")


def test_png_has_sane_size(tmp_path: Path) -> None:
    from PIL import Image

    out = render_graph(toy_resnet(blocks=3, stages=6), tmp_path / "g.png", engine="python", collapse=False)
    with Image.open(out) as im:
        assert max(im.size) <= render.PNG_MAX_SIDE
        assert im.size[0] > 200 and im.size[1] > 200


def test_png_scale_respects_caps() -> None:
    assert png_scale(400, 600) == 2.0
    assert png_scale(1000, 20000) * 20000 <= render.PNG_MAX_SIDE
    w, h = 9000, 9000
    s = png_scale(w, h)
    assert (w * s) * (h * s) <= render.PNG_MAX_PIXELS * 1.0001


def test_fmt_overrides_suffix(tmp_path: Path) -> None:
    out = render_graph(toy_resnet(), tmp_path / "picture.out", fmt="svg", engine="python")
    ET.fromstring(out.read_bytes())


def test_unknown_suffix_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        render_graph(toy_resnet(), tmp_path / "g.jpg")
    text = str(exc.value)
    for fmt in (".svg", ".png", ".pdf", ".dot"):
        assert fmt in text
    assert not list(tmp_path.iterdir())


def test_unknown_engine_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="engine"):
        render_graph(toy_resnet(), tmp_path / "g.svg", engine="neato")


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def test_failed_write_leaves_no_temp_file_and_keeps_old_output(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "g.dot"
    out.write_text("old")
    monkeypatch.setattr(render, "to_dot", lambda view, png_cap=False: None)  # write_text(None) fails
    with pytest.raises(TypeError):
        render_graph(toy_resnet(), out)
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]


def test_failed_raster_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def broken(image, dpi, title=""):
        raise RuntimeError("boom")

    monkeypatch.setattr(render, "pdf_bytes", broken)
    with pytest.raises(RuntimeError):
        render_graph(toy_resnet(), tmp_path / "g.pdf", engine="python")
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_is_not_writable(tmp_path: Path) -> None:
    with pytest.raises(OutputNotWritable):
        render_graph(toy_resnet(), tmp_path / "nope" / "g.svg", engine="python")


def test_overwrites_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    out.write_text("old")
    render_graph(toy_resnet(), out, engine="python")
    assert out.read_text().startswith("<?xml")


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------


def test_engine_dot_without_graphviz_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(graphviz_mod.shutil, "which", lambda name: None)
    with pytest.raises(MissingExtra) as exc:
        render_graph(toy_resnet(), tmp_path / "g.svg", engine="dot")
    assert "Graphviz" in str(exc.value) and "python" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_auto_without_graphviz_uses_python(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(graphviz_mod.shutil, "which", lambda name: None)
    out = render_graph(toy_resnet(), tmp_path / "g.svg", engine="auto")
    assert svg_groups(out.read_text(), "legend")


def test_dot_format_needs_no_graphviz(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(graphviz_mod.shutil, "which", lambda name: None)
    out = render_graph(toy_resnet(), tmp_path / "g.dot", engine="dot")
    assert out.read_text().startswith("digraph")


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' is not on PATH")
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF-")])
def test_engine_dot_renders(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = render_graph(toy_resnet(), tmp_path / f"g{suffix}", engine="dot")
    assert out.read_bytes().startswith(magic)
    if suffix == ".svg":
        ET.fromstring(out.read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == [f"g{suffix}"]


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' is not on PATH")
def test_dot_failure_is_a_ghnctl_error(tmp_path: Path, monkeypatch) -> None:
    from ghnctl.errors import GhnctlError

    monkeypatch.setattr(render, "to_dot", lambda view, png_cap=False: "digraph {")
    with pytest.raises(GhnctlError, match="dot failed"):
        render_graph(toy_resnet(), tmp_path / "g.svg", engine="dot")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def assert_top_down(n: int, edges: list[tuple[int, int]], widths: list[float]) -> None:
    lay = layered_layout(n, edges, widths)
    for u, v in edges:
        assert lay.layer[v] > lay.layer[u]
        assert lay.y[v] > lay.y[u]
        ys = [p[1] for p in lay.routes[(u, v)]]
        assert all(b > a for a, b in zip(ys, ys[1:]))
    # no two nodes of a layer overlap
    rows: dict[int, list[int]] = {}
    for v in range(n):
        rows.setdefault(lay.layer[v], []).append(v)
    for row in rows.values():
        row.sort(key=lambda v: lay.x[v])
        for a, b in zip(row, row[1:]):
            assert lay.x[b] - lay.x[a] >= (widths[a] + widths[b]) / 2 - 1e-6


def test_layout_is_top_down_on_a_toy_graph() -> None:
    g = toy_resnet()
    assert_top_down(g.num_nodes, g.edges, [60.0] * g.num_nodes)


@pytest.mark.parametrize("arch", ["resnet18", "vit_b_16", "densenet121", "squeezenet1_0"])
def test_layout_is_top_down_on_golden_graphs(shared_dir: Path, arch: str) -> None:
    g = golden_graph(shared_dir, arch)
    widths = [len(node_label(n)) * 7.0 + 18 for n in g.nodes]
    assert_top_down(g.num_nodes, g.edges, widths)


def test_layering_is_longest_path_and_pulls_sources_down() -> None:
    # 0 -> 1 -> 2 -> 4 and a late source 3 -> 4 (like ViT's position embedding)
    layers = assign_layers(5, [(0, 1), (1, 2), (2, 4), (3, 4)])
    assert layers == [0, 1, 2, 2, 3]


def test_layout_rejects_cycles() -> None:
    with pytest.raises(ValueError, match="cycle"):
        layered_layout(3, [(0, 1), (1, 2), (2, 0)], [10.0] * 3)


def test_crossing_reduction_untangles_a_crossed_pair() -> None:
    # Initial DFS order puts 2 before 3, but 1's child 3 should sit under 1.
    edges = [(0, 1), (0, 2), (1, 4), (2, 3)]
    lay = layered_layout(5, edges, [20.0] * 5)
    assert lay.crossings == 0


def test_empty_and_single_node_graphs_render(tmp_path: Path) -> None:
    single = make_graph("one", [{"op": "input", "name": "input"}], [])
    for g in (single, make_graph("none", [], [])):
        out = render_graph(g, tmp_path / f"{g.arch}.svg", engine="python")
        ET.fromstring(out.read_bytes())
        render_graph(g, tmp_path / f"{g.arch}.png", engine="python")


# --------------------------------------------------------------------------------------------
# Wrapping tall layouts into columns
# --------------------------------------------------------------------------------------------


def test_tall_layouts_wrap_into_columns_at_single_source_cuts() -> None:
    g = toy_resnet(blocks=4, stages=4)
    view = collapse_view(g, collapse=False)
    widths = [80.0] * g.num_nodes
    lay = layered_layout(g.num_nodes, g.edges, widths)
    columns = suggest_columns(lay)
    assert columns >= 2
    wrapped = wrap_columns(lay, widths, columns)
    assert wrapped.wrapped and wrapped.height < lay.height
    for ghost in wrapped.ghosts:
        assert g.nodes[ghost.node].op in ("sum", "bn")  # residual ends: one node feeds the next column
    column_of = {}
    for c, col in enumerate(wrapped.columns):
        for v in range(g.num_nodes):
            if col.first_layer <= lay.layer[v] <= col.last_layer and v not in column_of:
                column_of[v] = c
    for u, v in g.edges:
        pts = wrapped.routes[(u, v)]
        assert all(b[1] > a[1] for a, b in zip(pts, pts[1:]))  # still top-down inside a column
        if column_of[u] != column_of[v]:
            assert any(gh.node == u and gh.column == column_of[v] for gh in wrapped.ghosts)
    scene_svg = scene_to_svg(build_scene(view))
    assert len(svg_groups(scene_svg, "node")) == g.num_nodes
    assert svg_groups(scene_svg, "ghost")  # the picture is wrapped too, with continuation ghosts


def test_small_layouts_are_not_wrapped() -> None:
    g = toy_resnet()
    lay = layered_layout(g.num_nodes, g.edges, [60.0] * g.num_nodes)
    assert suggest_columns(lay) == 1
    assert wrap_columns(lay, [60.0] * g.num_nodes, 1) is lay


def test_wrap_never_cuts_through_a_block() -> None:
    g = toy_resnet(blocks=4, stages=4)
    lay = layered_layout(g.num_nodes, g.edges, [80.0] * g.num_nodes)
    keep = [(0, lay.num_layers - 1)]
    assert not wrap_columns(lay, [80.0] * g.num_nodes, 4, keep_together=keep).wrapped


# --------------------------------------------------------------------------------------------
# Collapsing repeated blocks
# --------------------------------------------------------------------------------------------


def test_identical_blocks_collapse_to_one_with_a_badge(tmp_path: Path) -> None:
    g = toy_resnet(blocks=3)
    view = collapse_view(g)
    assert len(view.blocks) == 1
    block = view.blocks[0]
    assert block.count == 3 and block.caption == "layer1.0–2"
    assert len(view.nodes) == g.num_nodes - 10
    visible = set(view.nodes)
    assert all(u in visible and v in visible for u, v in view.edges)
    # the block's output still reaches the head, from the representative
    assert (block.nodes[-1], g.num_nodes - 3) in view.edges
    svg = render_graph(g, tmp_path / "g.svg", engine="python").read_text()
    assert len(svg_groups(svg, "node")) == len(view.nodes)
    assert len(svg_groups(svg, "block")) == 1 and "×3" in svg
    dot = render_graph(g, tmp_path / "g.dot").read_text()
    assert "subgraph cluster_block0" in dot and "×3" in dot
    assert dot_edges(dot) == set(view.edges)


def test_collapse_false_draws_everything() -> None:
    g = toy_resnet(blocks=3)
    view = collapse_view(g, collapse=False)
    assert view.nodes == list(range(g.num_nodes)) and not view.blocks


def test_blocks_with_different_shapes_do_not_collapse() -> None:
    g = toy_resnet(blocks=2)
    nodes = [
        {"op": n.op, "name": n.name, "param": n.param, "shape": list(n.shape) if n.shape else None} for n in g.nodes
    ]
    nodes[8]["shape"] = [32, 16, 3, 3]  # layer1.1.conv1 differs from layer1.0.conv1
    changed = make_graph("toy", nodes, g.edges)
    assert collapse_view(changed).blocks == []


def test_vit_encoder_layers_collapse_twelve_to_one(shared_dir: Path) -> None:
    g = golden_graph(shared_dir, "vit_b_16")
    view = collapse_view(g)
    assert [(b.caption, b.count, len(b.nodes)) for b in view.blocks] == [("encoder.layers.encoder_layer_0–11", 12, 12)]
    assert len(view.nodes) == 152 - 11 * 12
    layered_layout(
        len(view.nodes),
        [(view.nodes.index(u), view.nodes.index(v)) for u, v in view.edges],
        [50.0] * len(view.nodes),
    )  # still a DAG


def test_resnet18_collapses_only_the_identical_first_stage(shared_dir: Path) -> None:
    view = collapse_view(golden_graph(shared_dir, "resnet18"))
    assert [(b.caption, b.count) for b in view.blocks] == [("layer1.0–1", 2)]


def test_densenet_renders_in_sane_size(shared_dir: Path) -> None:
    g = golden_graph(shared_dir, "densenet121")
    scene = build_scene(collapse_view(g))
    assert scene.width * png_scale(scene.width, scene.height) <= render.PNG_MAX_SIDE
    svg = scene_to_svg(scene)
    assert len(svg_groups(svg, "node")) == 307
    assert len(svg_groups(svg, "edges")[0]) == 841
    assert dot_edges(to_dot(collapse_view(g, collapse=False))) == set(g.edges)


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def test_labels_are_short() -> None:
    assert node_label(Node(1, "conv", "w", "w", (768, 3, 16, 16))) == "conv 768×3×16×16"
    assert node_label(Node(2, "max_pool", "MaxPool2DWithIndicesBackward0", None, (1, 1, 3, 3))) == "max_pool 3×3"
    assert node_label(Node(3, "sum", "AddBackward0")) == "sum"
    assert node_label(Node(0, "input", "input"), (3, 224, 224)) == "input 3×224×224"


def test_every_op_has_a_distinct_colour() -> None:
    from ghnctl.graph.model import PRIMITIVES

    assert set(render.OP_COLORS) == set(PRIMITIVES) == set(render.LEGEND_ORDER)
    fills = [fill for fill, _ in render.OP_COLORS.values()]
    assert len(set(fills)) == len(fills)


def test_layout_module_has_no_renderer_dependencies() -> None:
    source = Path(layout_mod.__file__).read_text()
    assert "PIL" not in source and "ghnctl" not in source.replace("ghnctl.graph.layout", "")


def test_dot_escapes_quotes_and_html(tmp_path: Path) -> None:
    g = make_graph(
        'we"ird<arch>',
        [{"op": "input", "name": "input"}, {"op": "conv", "param": 'a."b"\\c.weight', "shape": [2, 3]}],
        [(0, 1)],
    )
    text = to_dot(collapse_view(g))
    assert 'tooltip="a.\\"b\\"\\\\c.weight' in text
    assert "we&quot;ird&lt;arch&gt;" in text
    svg = render_graph(g, tmp_path / "g.svg", engine="python").read_text()
    ET.fromstring(svg.encode())
    if HAS_DOT:
        render_graph(g, tmp_path / "g2.svg", engine="dot")


def test_rendering_prints_nothing(tmp_path: Path, capsys) -> None:
    for suffix in (".svg", ".png", ".dot"):
        render_graph(toy_resnet(), tmp_path / f"g{suffix}", engine="python")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_renders_a_graph_from_build_graph(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    from ghnctl.graph import build_graph

    g = build_graph(torchvision.models.resnet18(), arch="resnet18")
    view = collapse_view(g)
    assert [(b.caption, b.count) for b in view.blocks] == [("layer1.0–1", 2)]
    svg = render_graph(g, tmp_path / "r18.svg", engine="python").read_text()
    assert len(svg_groups(svg, "node")) == g.num_nodes - 5
    assert "fc.weight" in svg


def test_a_cyclic_graph_is_a_graph_error(tmp_path: Path) -> None:
    from ghnctl.errors import GraphError

    g = make_graph("loop", [{"op": "input", "name": "input"}, {"op": "sum"}, {"op": "sum"}], [(0, 1), (1, 2), (2, 1)])
    with pytest.raises(GraphError, match="cycle"):
        render_graph(g, tmp_path / "g.svg", engine="python")
    assert list(tmp_path.iterdir()) == []
