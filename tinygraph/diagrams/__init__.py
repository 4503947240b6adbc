"""Diagrams of forward and generated backward graphs: model.py builds the picture as plain
data (no Graphviz), dot.py emits Graphviz from it."""
