"""Every rule template (`Primitive.rules`, the formula the explorer shows for a gradient) is
checked against its primitive's vjp: over the op table (tests/engine/op_cases.py), the
template is evaluated on the node's own inputs, output and a random output gradient, in
float64, and must give the vjp's result. A template that restates its vjp wrongly (one that
drifted after the vjp changed, or was written for another input) fails here.

The notation, as the templates write it (evaluated by `evaluate` below, on numpy):

    {gy}  the output's gradient      {y}  the output      {x0}, {x1}, ...  the inputs
    a ⊙ b      elementwise (Hadamard) product       a / b   elementwise quotient
    a · b      matrix product (matmul, batch axes broadcast); with a number, a plain product,
               and a number before it is a coefficient: g ⊙ 3·x^2 is g ⊙ (3·x^2)
    a − b, −a  difference, negation (U+2212; an ASCII "-" only begins a number, as in x^-2)
    a ᵀ        the last two axes swapped             a², a^p   powers (p a number)
    Σa         a summed along the op's axis (its `axis`: the class axis of log-softmax and its
               gradients), the axis kept so that it broadcasts back
    exp, tanh, σ, step (1 where > 0, else 0), softmax (along the op's axis)
    transpose(a) its axes reversed; transpose(a, (i, j, ...)) its axes in that order
    sum_to(a), broadcast(a), reshape(a): a summed, broadcast (axes the op summed away put back
               first) or reshaped to the shape of the input whose gradient the rule gives
    zeros with a put in at the slice     a in zeros (the input's shape) at the op's key
    the slice of a                       a at the op's key
    zeros with a added in at the ids     a added into zeros (the input's shape) at the ids,
                                         repeated ids adding up
    a at the ids                         a's entries at the ids (a gather)
    the piece of a where the input went  for a concat's input k: the part of a along the
                                         op's axis that input k filled
where "the ids" are the op's integer inputs (placed into its key where it has one).

As the explorer does (tinygraph.diagrams.picture, `_vjp_rule`), an elementwise op's template for an
input it broadcast is read as sum_to(template). A matmul's batch axes broadcast too, and the
explorer leaves their sum unwritten: for matmul and matmul_tn the formula's value is summed
down to the input's shape (BATCH_SUMMED).
"""
import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph.ops import all_primitives
from tinygraph.ops.elementwise import Elementwise
from tinygraph.ops.indexing import fill
from tests.engine.op_cases import CASES

PRIMITIVES = {cls.name: cls for cls in all_primitives() if cls.__module__.startswith("tinygraph.")}

# Templates that are prose and cannot be evaluated, with the reason: (primitive, input) ->
# why. Keep this short: prefer a formula in the notation above that a learner reads as well.
NOT_EVALUABLE = {
    ("checkpoint", 0): "a checkpointed segment's gradient is its own ops' backward pass, "
                       "recomputed: no one formula",
    ("checkpoint", 1): "as for input 0",
}

# Ops whose batch axes broadcast without the template saying sum_to (see the docstring).
BATCH_SUMMED = {"matmul", "matmul_tn"}

# The axis Σ and softmax run along, for ops without an `axis` attribute.
CLASS_AXIS = {"log_softmax_grad_at": 1}       # (rows, classes): its y is 2-D


class TemplateError(Exception):
    """The template does not parse in the notation (prose, a typo, an unknown name)."""


# --- the evaluator ------------------------------------------------------------------------------

PHRASES = ["zeros with", "put in at the slice", "added in at the ids", "at the ids",
           "the slice of", "the piece of", "where the input went"]
FUNCTIONS = ["exp", "tanh", "σ", "heaviside", "softmax", "sum_to", "broadcast", "reshape",
             "transpose"]
TOKEN = re.compile("|".join(
    [r"(?P<space>\s+)", r"(?P<placeholder>\{(?:gy|y|x\d+)\})",
     r"(?P<number>-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)",
     r"(?P<phrase>" + "|".join(sorted(map(re.escape, PHRASES), key=len, reverse=True)) + ")",
     r"(?P<function>(?:" + "|".join(map(re.escape, FUNCTIONS)) + r")(?=\())",
     r"(?P<symbol>[⊙·/−+()ᵀ²^Σ,])"]))


def tokens(template):
    out, at = [], 0
    while at < len(template):
        m = TOKEN.match(template, at)
        if m is None:
            raise TemplateError(f"cannot read {template[at:]!r} in {template!r}")
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        at = m.end()
    return out


class Reading:
    """The values a template reads, and the op's attributes its notation refers to."""

    def __init__(self, prim, k, inputs, y, gy):
        self.prim, self.k, self.inputs, self.y, self.gy = prim, k, inputs, y, gy
        self.target = inputs[k].shape          # the shape of the gradient the rule gives

    def value(self, name):
        name = name[1:-1]
        if name == "gy":
            return self.gy
        if name == "y":
            return self.y
        i = int(name[1:])
        if i >= len(self.inputs):
            raise TemplateError(f"{{{name}}}: the op has {len(self.inputs)} inputs")
        return self.inputs[i]

    @property
    def axis(self):
        axis = getattr(self.prim, "axis", CLASS_AXIS.get(self.prim.name))
        if axis is None:
            raise TemplateError(f"Σ or softmax in a rule of {self.prim.name}, which has no axis")
        return axis

    @property
    def ids(self):
        ints = [a for a in self.inputs if np.issubdtype(a.dtype, np.integer)]
        key = getattr(self.prim, "key", None)
        return fill(key, ints) if key is not None else tuple(ints)

    def zeros(self, dtype):
        return np.zeros(self.target, dtype)


def sum_to(a, shape):
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and a.shape[lead + i] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape) if axes else a.reshape(shape)


def softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Parser:
    """Recursive descent over the grammar

        expr    := term (('−' | '+') term)*
        term    := factor (('⊙' | '·' | '/') factor)*
        factor  := ('−' | 'Σ') factor | number '·' factor | postfix
        postfix := primary ('ᵀ' | '²' | '^' number | 'at the ids')*
        primary := placeholder | number | function '(' expr (',' expr)* ')'
                 | '(' expr (',' expr)* ')' | 'the slice of' factor
                 | 'zeros with' expr ('put in at the slice' | 'added in at the ids')
                 | 'the piece of' expr 'where the input went'
    """

    def __init__(self, template, reading):
        self.template, self.r = template, reading
        self.toks, self.at = tokens(template), 0

    def parse(self):
        value = self.expr()
        if self.at != len(self.toks):
            self.fail("unexpected")
        return value

    def fail(self, what):
        got = self.toks[self.at][1] if self.at < len(self.toks) else "the end"
        raise TemplateError(f"{what} {got!r} in {self.template!r}")

    def peek(self):
        return self.toks[self.at][1] if self.at < len(self.toks) else None

    def take(self, text=None):
        if self.at >= len(self.toks) or text is not None and self.peek() != text:
            self.fail(f"expected {text!r}, got" if text else "expected more, got")
        self.at += 1
        return self.toks[self.at - 1]

    def expr(self):
        value = self.term()
        while self.peek() in ("−", "+"):
            op = self.take()[1]
            right = self.term()
            value = value - right if op == "−" else value + right
        return value

    def term(self):
        value = self.factor()
        while self.peek() in ("⊙", "·", "/"):
            op = self.take()[1]
            right = self.factor()
            if op == "⊙":
                value = value * right
            elif op == "/":
                value = value / right
            elif isinstance(value, (int, float)) or isinstance(right, (int, float)):
                value = value * right          # 3·x: a number times
            else:
                value = np.matmul(value, right)
        return value

    def factor(self):
        if (self.at + 1 < len(self.toks) and self.toks[self.at][0] == "number"
                and self.toks[self.at + 1][1] == "·"):      # a coefficient: 3·x^2 in g ⊙ 3·x^2
            coefficient = self.primary()
            self.take("·")
            return coefficient * self.factor()
        if self.peek() == "−":
            self.take()
            return -self.factor()
        if self.peek() == "Σ":
            self.take()
            return np.sum(self.factor(), axis=self.r.axis, keepdims=True)
        return self.postfix()

    def postfix(self):
        value = self.primary()
        while self.peek() in ("ᵀ", "²", "^", "at the ids"):
            op = self.take()[1]
            if op == "ᵀ":
                value = np.swapaxes(value, -1, -2)
            elif op == "²":
                value = value ** 2
            elif op == "^":
                kind, text = self.take()
                if kind != "number":
                    self.fail("expected a number after ^, got")
                value = value ** float(text)
            else:
                value = value[self.r.ids]
        return value

    def primary(self):
        kind, text = self.take()
        if kind == "placeholder":
            return self.r.value(text)
        if kind == "number":
            return float(text) if re.search(r"[.e]", text) else int(text)
        if kind == "function":
            return self.call(text, self.group())
        if text == "(":
            self.at -= 1
            items = self.group()
            return items[0] if len(items) == 1 else tuple(items)
        if text == "the slice of":
            return self.factor()[self.r.prim.key]
        if text == "zeros with":
            inner = self.expr()
            how = self.take()[1]
            out = self.r.zeros(np.result_type(inner))
            if how == "put in at the slice":
                out[self.r.prim.key] = inner
            elif how == "added in at the ids":
                np.add.at(out, self.r.ids, inner)
            else:
                self.at -= 1
                self.fail("expected 'put in at the slice' or 'added in at the ids', got")
            return out
        if text == "the piece of":
            inner = self.expr()
            self.take("where the input went")
            axis = self.r.prim.axis
            start = sum(a.shape[axis] for a in self.r.inputs[:self.r.k])
            key = (slice(None),) * axis + (slice(start, start + self.r.target[axis]),)
            return inner[key]
        self.at -= 1
        self.fail("unexpected")

    def group(self):
        self.take("(")
        items = [self.expr()]
        while self.peek() == ",":
            self.take()
            items.append(self.expr())
        self.take(")")
        return items

    def call(self, name, args):
        a, r = args[0], self.r
        if name == "transpose":
            return np.transpose(a, *args[1:])
        if len(args) != 1:
            raise TemplateError(f"{name} takes one argument in {self.template!r}")
        if name == "exp":
            return np.exp(a)
        if name == "tanh":
            return np.tanh(a)
        if name == "σ":
            return 1 / (1 + np.exp(-a))
        if name == "heaviside":
            return (a > 0).astype(a.dtype)
        if name == "softmax":
            return softmax(a, r.axis)
        if name == "sum_to":
            return sum_to(a, r.target)
        if name == "reshape":
            return np.reshape(a, r.target)
        # broadcast: the axes a sum without keepdims removed are put back first.
        if not getattr(r.prim, "keepdims", True):
            a = np.expand_dims(a, r.prim.axis)
        return np.broadcast_to(a, r.target)


def evaluate(template, reading):
    """The template's value on `reading` (see the module docstring); TemplateError when the
    template is not in the notation."""
    return Parser(template, reading).parse()


# --- the checks ---------------------------------------------------------------------------------

def as_shown(prim, k, node):
    """The template the explorer shows for input k (tinygraph.diagrams.picture, `_vjp_rule`)."""
    template = prim.rule(k)
    if (template is not None and isinstance(prim, Elementwise)
            and node.inputs[k].shape != node.output.shape):
        template = f"sum_to({template})"           # the input was broadcast
    return template


def recorded(case, seed=0):
    """The case run on float64 leaves: (its output, to keep the graph alive; the nodes of the
    case's primitive)."""
    arrays = case.inputs(np.random.default_rng(seed))
    xs = [tg.tensor(a, requires_grad=np.issubdtype(a.dtype, np.floating)) for a in arrays]
    out = case.apply(xs)
    found = [n for n in tg.nodes([out]) if n.op == case.primitive]
    assert found, f"{case}: no {case.primitive} node"
    return out, found


def vjp_and_reading(node, k, seed=1):
    """The vjp's gradients of node's inputs for a random float64 output gradient, and the
    Reading for input k on the same values."""
    gy = np.asarray(np.random.default_rng(seed).standard_normal(node.output.shape))
    grads = node.prim.vjp(node, tg.tensor(gy), [True] * len(node.inputs))
    inputs = [t.data for t in node.inputs]
    return grads, Reading(node.prim, k, inputs, node.output.data, gy)


def mismatch(node, k, template):
    """None when the template's value is the vjp's gradient of input k; else why not."""
    grads, reading = vjp_and_reading(node, k)
    if grads[k] is None:
        return f"the vjp gives no gradient for input {k}"
    expected = grads[k].data
    try:
        got = np.asarray(evaluate(template, reading), dtype=np.float64)
    except (ValueError, IndexError) as e:      # shapes that do not fit (a wrong axis, say)
        return f"{template!r} cannot be evaluated on these inputs: {e}"
    if node.op in BATCH_SUMMED and got.shape != expected.shape:
        got = sum_to(got, expected.shape)
    if got.shape != expected.shape:
        return f"{template!r} has shape {got.shape}, the gradient {expected.shape}"
    if not np.allclose(got, expected, rtol=1e-12, atol=1e-12):
        worst = np.max(np.abs(got - expected))
        return f"{template!r} differs from the vjp by up to {worst:.3g}"
    return None


RULE_CASES = [c for c in CASES if c.primitive in PRIMITIVES]


@pytest.mark.parametrize("case", RULE_CASES, ids=str)
def test_every_rule_template_gives_its_vjp(case):
    """For each input: a rule where the vjp gives a gradient, none where it gives none (the
    ids of an index), and the rule's formula equal to the vjp's result."""
    out, found = recorded(case)
    for node in found:
        for k in range(len(node.inputs)):
            grads, _ = vjp_and_reading(node, k)
            template = as_shown(node.prim, k, node)
            if (node.op, k) in NOT_EVALUABLE:
                continue
            if grads[k] is None:
                assert template is None, \
                    f"{case}: a rule for input {k}, which gets no gradient: {template!r}"
                continue
            assert template is not None, f"{case}: no rule for input {k}, which has a gradient"
            problem = mismatch(node, k, template)
            assert problem is None, f"{case}, input {k}: {problem}"


def test_every_primitive_with_gradients_has_rules():
    """The primitives without rules are exactly those whose vjps pass no gradient back."""
    without = {name for name, cls in PRIMITIVES.items() if cls.rules is None
               and cls.rule in (tg.Primitive.rule, Elementwise.rule)
               and not (cls.rule is Elementwise.rule and cls().rule(0) is not None)}
    no_gradient = {c.primitive for c in CASES if not c.differentiable}
    assert without == no_gradient


def test_templates_listed_as_not_evaluable_are_current_and_really_prose():
    for (name, k), why in NOT_EVALUABLE.items():
        assert why, f"{name} input {k}: say why"
        case = next(c for c in RULE_CASES if c.primitive == name)
        out, (node, *_) = recorded(case)
        _, reading = vjp_and_reading(node, k)
        with pytest.raises(TemplateError):
            evaluate(node.prim.rule(k), reading)


# Wrong templates the check must fail: first those that once stood in the ops (the first
# rule of log_softmax_grad was its op's forward, not its derivative; log_softmax_grad_at's
# second was log_softmax_grad's with v in the place of g, Σv reading as v's total; a plain
# transpose({gy}) is wrong for every transposition but the reversal), then likely slips.
# (log_softmax_grad_at's first, also its forward, was prose: "(exp({x1}) ⊙ −Σ{gy}) with {gy}
# added at the ids".)
DRIFTED = [
    ("log_softmax_grad", 0, "{gy} − exp({x1}) ⊙ Σ{gy}"),
    ("log_softmax_grad:axis0", 0, "{gy} − exp({x1}) ⊙ Σ{gy}"),
    ("log_softmax_grad_at", 1, "−{gy} ⊙ exp({x1}) ⊙ Σ{x0}"),
    ("transpose:axes", 0, "transpose({gy})"),
    ("transpose:cycle", 0, "transpose({gy}, (2, 0, 1))"),      # the op's axes, not undone
    ("mul", 0, "{gy} ⊙ {x0}"),                                  # the other input's rule
    ("div", 1, "−{gy} ⊙ {y} / {x1}²"),
    ("matmul", 0, "{x1}ᵀ · {gy}"),
    ("sigmoid", 0, "{gy} ⊙ (1 − {y}²)"),
    ("concat:last", 1, "the piece of {gy} where the input went ⊙ 2"),
]


@pytest.mark.parametrize("name, k, template", DRIFTED, ids=[f"{n}-{k}" for n, k, _ in DRIFTED])
def test_a_drifted_template_fails_the_check(name, k, template):
    case = next(c for c in RULE_CASES if c.name == name)
    out, (node, *_) = recorded(case)
    if isinstance(node.prim, Elementwise) and node.inputs[k].shape != node.output.shape:
        template = f"sum_to({template})"
    assert mismatch(node, k, template) is not None


@pytest.mark.parametrize("template", ["the gradient, roughly", "{gy} - {y}", "{gy} ⊙ {z}",
                                      "{x7} ⊙ {gy}", "exp {gy}", "({gy}"])
def test_what_is_not_in_the_notation_is_an_error(template):
    """Prose, an ASCII minus, unknown names and broken brackets do not pass as formulas."""
    case = next(c for c in RULE_CASES if c.name == "mul")
    out, (node, *_) = recorded(case)
    _, reading = vjp_and_reading(node, 0)
    with pytest.raises(TemplateError):
        evaluate(template, reading)
