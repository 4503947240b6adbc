"""The engine's core: context-local recording state, Tensor, Node, Primitive and `apply`,
reverse-mode differentiation and the gradient accumulator. It imports nothing above it."""
