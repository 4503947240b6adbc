"""A primitive's gradient rule, derived from its vjp instead of written by hand.

`derived_rule(prim, k, example_inputs)` runs the vjp once on placeholder tensors named x0,
x1, ... (the inputs), y (the output) and gy (the output's gradient), recording it as a graph
(as `create_graph=True` does), and writes the gradient of input k back as a formula with each
recorded op's `write()`: sigmoid's vjp, `g * y * (1 - y)`, reads "{gy} ⊙ {y} ⊙ (1 − {y})".
The result is a template in the notation of `Primitive.rules` ({gy}, {y}, {x0}, ...), so the
explorer fills it in with the tensors' own names.

It lives with the ops (not in the core) because it needs the ops' `write()` and formulas.
"""
import re

from ..backend import xp
from ..core.primitive import apply
from ..core.state import changed, recording_backward
from ..core.tensor import Tensor
from .labels import number_text

# How tightly a written formula binds, to put parentheses only where they are needed.
SUM, PRODUCT, ATOM = 1, 2, 3
BINARY = re.compile(r"\{0\} (?P<op>[+−⊙/·]) \{1\}")
PRECEDENCE = {"+": SUM, "−": SUM, "⊙": PRODUCT, "/": PRODUCT, "·": PRODUCT}
CALL = re.compile(r"[^{}\s]+\(\{0\}\)")          # written as a call: tanh({0})


def derived_rule(prim, k, example_inputs):
    """The gradient of input k of `prim`, as a template written from its recorded vjp; None
    where the vjp passes no gradient to input k. example_inputs: one array per input (their
    shapes matter to vjps that sum or reshape: unbroadcast writes nothing when shapes agree)."""
    inputs = [Tensor(xp.asarray(a), name=f"x{i}",
                     requires_grad=xp.issubdtype(xp.asarray(a).dtype, xp.floating))
              for i, a in enumerate(example_inputs)]
    with changed(interpreter=None, grad_enabled=True):     # a plain eager run, recorded
        y = apply(prim, *inputs)
        y.name = "y"
        gy = Tensor(xp.ones_like(y.data), name="gy", requires_grad=True)
        with recording_backward(y._node, "vjp"):
            grads = prim.vjp(y._node, gy, [t.requires_grad for t in inputs])
    g = grads[k]
    if g is None:
        return None
    names = {id(t): f"{{x{i}}}" for i, t in enumerate(inputs)}
    names.update({id(y): "{y}", id(gy): "{gy}"})
    return _written(g, names)[0]


def _written(t, names):
    """(text, precedence) of tensor t: a placeholder, a number, or its op written on its
    inputs' texts, parenthesized where the op binds tighter than they do."""
    if id(t) in names:
        return names[id(t)], ATOM
    node = t._node
    if node is None:
        if t.data is not None and t.size == 1:
            return number_text(t.data.reshape(())), ATOM
        return f"({t.shape} array)", ATOM
    prim = node.prim
    parts = [_written(u, names) for u in node.inputs]
    if type(prim).__name__ == "Mul" and node.inputs[0] is node.inputs[1]:
        return _operand(parts[0], ATOM) + "²", ATOM          # y ⊙ y is y²
    formula = prim.formula or ""
    binary = BINARY.fullmatch(formula)
    if binary:
        level = PRECEDENCE[binary["op"]]
        # left-associative: the right operand needs parentheses at the same level too
        texts = [_operand(parts[0], level), _operand(parts[1], level + 1)]
        return prim.write(texts), level
    if formula == "−{0}":                   # −(a ⊙ b) is (−a) ⊙ b: a product needs none
        return prim.write([_operand(parts[0], PRODUCT)]), PRODUCT
    if not formula or CALL.fullmatch(formula) or "{all}" in formula:
        return prim.write([text for text, _ in parts]), ATOM
    return prim.write([_operand(p, ATOM) for p in parts]), ATOM    # Σ x, xᵀ · y, x^p


def _operand(part, level):
    text, precedence = part
    return text if precedence >= level else f"({text})"
