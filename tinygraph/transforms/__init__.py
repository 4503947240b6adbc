"""Transforms of recorded graphs and functions: rewrite (simplify), compile (trace on
shapes, replay), the step contract (value_and_grad), anomaly checks and gradient checks."""
