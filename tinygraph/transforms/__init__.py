"""Transforms of recorded graphs and functions: rewrite (simplify), compile (trace on
shapes, replay), the step contract (eager_step), anomaly checks and gradient checks."""
