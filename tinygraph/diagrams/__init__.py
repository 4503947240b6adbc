"""Diagrams of forward and generated backward graphs: picture.py builds the picture as
plain data (no Graphviz), dot.py emits Graphviz from it."""
