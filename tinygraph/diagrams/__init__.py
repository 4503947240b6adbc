"""Diagrams of forward and generated backward graphs: Graphviz (dot)."""
