"""Model -> GHN graph: tracing, the official construction rules, and rendering."""

from .build import build_graph, default_image_size
from .model import OP_INDEX, PRIMITIVES, GhnGraph, Node

__all__ = ["GhnGraph", "Node", "PRIMITIVES", "OP_INDEX", "build_graph", "default_image_size"]
