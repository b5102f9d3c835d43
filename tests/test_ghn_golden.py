"""Golden graphs as GhnGraph objects, independent of ghnctl's graph builder.

``golden_graph(arch, num_classes)`` rebuilds the graph the official code built from
``graph__<arch>__c<N>.json``: nodes as recorded, the distance matrix from all-pairs BFS (cutoff
50) over the recorded 1-hop edges, checked against the recorded sha256 and histogram. The GHN
tests use it so that they do not depend on the graph builder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import deque
from pathlib import Path

import pytest
import torch

from ghnctl.graph.model import GhnGraph, Node

# The shared references: $GHNCTL_SHARED or shared/ beside the clone (as the conftest's shared_dir).
GOLDEN = Path(os.environ.get("GHNCTL_SHARED") or Path(__file__).resolve().parents[2] / "shared") / "golden"
ARCHS = ("resnet18", "resnet50", "mobilenet_v3_small", "vit_b_16", "convnext_tiny", "densenet121",
         "squeezenet1_0", "efficientnet_b0")
VE_CUTOFF = 50

needs_golden = pytest.mark.skipif(not GOLDEN.is_dir(), reason="shared/golden is not available")


def bfs_distances(n: int, edges: list[tuple[int, int]], cutoff: int = VE_CUTOFF) -> torch.Tensor:
    """A[i, j] = shortest directed path length i -> j when 1 <= length <= cutoff, else 0."""
    succ: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        succ[a].append(b)
    dist = torch.zeros(n, n, dtype=torch.long)
    for source in range(n):
        seen = {source: 0}
        queue = deque([source])
        while queue:
            u = queue.popleft()
            if seen[u] == cutoff:
                continue
            for v in succ[u]:
                if v not in seen:
                    seen[v] = seen[u] + 1
                    queue.append(v)
        for v, d in seen.items():
            if d > 0:
                dist[source, v] = d
    return dist


def _module_of(param: str | None) -> str | None:
    return param.rsplit(".", 1)[0] if param and "." in param else ("" if param else None)


@functools.cache
def _golden_json(arch: str, num_classes: int) -> dict:
    return json.loads((GOLDEN / f"graph__{arch}__c{num_classes}.json").read_text())


def golden_graph(arch: str, num_classes: int) -> GhnGraph:
    """The official graph of ``torchvision.models.<arch>(num_classes=...)`` as a GhnGraph."""
    data = _golden_json(arch, num_classes)
    nodes = [
        Node(index=i, op=n["op"], name=n["name"], param=n["param"],
             shape=tuple(n["shape"]) if n["shape"] is not None else None, module=_module_of(n["param"]))
        for i, n in enumerate(data["nodes"])
    ]
    dist = _cached_dist(arch, num_classes)
    return GhnGraph(arch=arch, nodes=nodes, dist=dist.clone(), ve_cutoff=VE_CUTOFF)


@functools.cache
def _cached_dist(arch: str, num_classes: int) -> torch.Tensor:
    data = _golden_json(arch, num_classes)
    return bfs_distances(len(data["nodes"]), [tuple(e) for e in data["edges"]])


@needs_golden
@pytest.mark.parametrize("num_classes", [1000, 10])
@pytest.mark.parametrize("arch", ARCHS)
def test_golden_graph_distance_matrix_is_exact(arch: str, num_classes: int) -> None:
    data = _golden_json(arch, num_classes)
    graph = golden_graph(arch, num_classes)
    digest = hashlib.sha256(graph.dist.to(torch.uint8).numpy().tobytes()).hexdigest()
    assert digest == data["dist_sha256_uint8"]
    assert {str(k): v for k, v in graph.dist_histogram().items()} == data["dist_hist"]
    assert graph.num_nodes == data["n_nodes"] and graph.num_edges == data["n_edges"]
    assert graph.dist[0].tolist() == data["input_dist"]
    assert graph.in_degree == data["in_degree"] and graph.out_degree == data["out_degree"]


def test_bfs_distances_respects_cutoff_and_direction() -> None:
    chain = [(i, i + 1) for i in range(5)]
    dist = bfs_distances(6, chain, cutoff=3)
    assert dist[0].tolist() == [0, 1, 2, 3, 0, 0]
    assert dist[5].tolist() == [0] * 6  # edges are directed
    assert dist.diagonal().sum() == 0
