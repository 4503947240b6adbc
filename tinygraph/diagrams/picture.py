"""What a diagram shows, as plain data: no Graphviz here.

`build` derives the graphs to draw (the backward graph made with create_graph=True, optionally
simplified; gradient norms from a second backward pass) and returns a `Picture`: boxes
(`nodes`) with their kind, label lines, shape, dtype and scope; arrows (`edges`) with their
kind and, into a Σ, the use each summand came from; the scopes in program order; the caption's
node counts. It holds only ints, floats, strings, lists and tuples, so
`dataclasses.asdict(picture)` is JSON-ready and a front end (the Graphviz emitter in dot.py,
an interactive explorer) needs no tensors.

Box ids are the drawing order, which depends only on the graph: the same graph always gives
the same picture.
"""
import re
from dataclasses import dataclass, field

from ..backend import xp
from ..core.autodiff import grad, leaves, nodes
from ..core.node import Node
from ..core.state import TIME_STEP
from ..core.tensor import Parameter, Tensor
from ..ops.elementwise import Add, Elementwise, Mul
from ..ops.indexing import Slice
from ..ops.labels import number_text
from ..transforms.rewrite import simplify as simplify_graph

VIEWS = ("forward", "backward", "both")
INDEXED = re.compile(r"[0-9₀-₉]$")        # a name that carries its own index (c2, h₃)
CALL = re.compile(r"[^{}\s]+\(\{0\}\)")      # a formula written as a call: tanh({0})
DERIVED_MAX = 16          # longest formula that names an unnamed forward value (f⊙c_prev)
# op: a forward op; tensor, parameter: forward leaves; seed: a gradient the backward pass starts
# from; ghost: a forward value drawn in the backward view only; backward: a backward op; sum: a
# fan-in sum of a gradient; constant: a constant gradient term; result: a gradient that
# simplified to no backward node (a constant or a forward value).
KINDS = ("op", "tensor", "parameter", "seed", "ghost", "backward", "sum", "constant", "result")
BACKWARD_KINDS = ("backward", "sum")


@dataclass
class Box:
    """One box of the picture: an op, a leaf, a seed, a backward op or a Σ (see KINDS)."""

    id: int
    kind: str
    lines: list              # the label, line by line
    shape: tuple
    dtype: str
    scope: tuple = ()        # the tinygraph.scope names it was created in, outermost first
    # An op's position in forward order; for a backward node or a ghost, that of the forward
    # op it belongs to (the one whose vjp made it, or that computed it); None where none.
    step: int = None
    grad_of: str = None      # for a gradient value: the name of the tensor it is the gradient of
    grad_norm: float = None  # with grad_norms=True: the norm of the gradient the node shows
    # For a backward node, what the explorer says of it: `rule`, the formula of this very
    # node written with the drawn names of the nodes it reads (∂L/∂c_prev = ∂L/∂c ⊙ f);
    # `role`, one line on what it is for; `vjp`, the forward op whose vjp made it and that
    # op's equation (vjp of mul in c = f⊙c_prev + g⊙i); `vjp_rule`, that vjp's whole formula
    # for this input; `operands`, what the rule reads, in order: {"id": model node, "name"}
    # or {"name", "const": its value}.
    rule: str = None
    role: str = None
    vjp: str = None
    vjp_rule: str = None
    operands: list = None
    display: str = None      # a forward value's name as drawn, time step included (f₃)
    # Other names simplification merged into this node ("= ∂L/∂tanh_c": a gradient that
    # became this value), shown under its name (for a forward value, in the backward view).
    also: list = None
    parts: list = None       # a join's pieces, by name, in order (A_f, A_g, A_i, A_o)
    # Colours mean roles: nodes that play the same part (the gate f, its gradient, in every
    # time step) share this number; None: no hue of its own.
    hue: int = None
    # A backward op that is a forward op run again: a checkpointed segment recomputed by its
    # vjp (tinygraph.checkpoint), drawn dashed.
    recomputed: bool = False


@dataclass
class Arrow:
    """An arrow between two boxes, by id."""

    tail: int
    head: int
    kind: str                # "data" (forward), "gradient" (gradient flow) or "saved" (a
                             # forward value the backward pass reads)
    use: str = None          # into a Σ: which use of the tensor the summand came from


@dataclass
class Picture:
    """The whole picture: boxes (nodes), arrows (edges), scopes and the caption's facts."""

    view: str
    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    scopes: list = field(default_factory=list)   # every scope path, in program order
    backward_count: int = 0                      # backward nodes in the drawn graph
    simplified: tuple = None                     # (nodes before, nodes after) when simplified
    grad_norms: list = None                      # every norm of the second pass (the colour
                                                 # scale's range); None unless asked for


def _d(name):
    """∂L/∂name, with a compound name in parentheses: ∂L/∂(1 − z), ∂L/∂(f⊙c_prev)."""
    return f"∂L/∂({name})" if any(ch in name for ch in " ⊙·+−/") else f"∂L/∂{name}"


def build(outputs, view="both", simplify=True, wrt=None, grad_outputs=None, grad_norms=False,
          with_sources=False):
    """The picture `render(outputs, ...)` draws; see tinygraph.render for the options.

    with_sources: also return, per box, (the tensor it shows, the graph Node it
    draws or None): for an emitter that shows values (the explorer).
    simplify may also be a function that simplifies the backward roots its own way, returning
    a Simplified (the explorer's replay of the rewrite log: the first k rewrites only)."""
    if view not in VIEWS:
        raise ValueError(f"render: unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        raise TypeError("render: outputs must be a Tensor or a non-empty list of Tensors")
    builder = _Builder(outputs, view, simplify, wrt, grad_outputs, grad_norms)
    return (builder.model, builder.sources) if with_sources else builder.model


def derive(outputs, wrt, grad_outputs):
    """The gradients to draw, made with create_graph=True, as (tensor, gradient) pairs, and
    the seeds as {id(seed): (seed, the output it seeds)}."""
    if wrt is None:
        wrt = leaves(outputs)
    wrt = [wrt] if isinstance(wrt, Tensor) else list(wrt)
    if not wrt:
        raise ValueError("render: nothing requires grad, so there is no backward graph; "
                         "create inputs with requires_grad=True, draw the forward view "
                         "only, or (to draw gradients) compute them with create_graph=True")
    given = _as_list(grad_outputs) if grad_outputs is not None else \
        [default_seed(out) for out in outputs]
    grads = grad(outputs, wrt, grad_outputs=given, create_graph=True, allow_unused=True)
    # Array seeds become constants inside grad, so only Tensor seeds can appear as seeds.
    seeds = {id(s): (s, out) for s, out in zip(given, outputs) if isinstance(s, Tensor)}
    return [(t, g) for t, g in zip(wrt, grads) if g is not None], seeds


def default_seed(out):
    """1 for a scalar output; otherwise a symbolic upstream gradient named ∂L/∂<output>."""
    if out.size == 1:
        return Tensor(xp.ones_like(out.data), constant=True)
    name = out.name or (out._node.op if out._node is not None else "y")
    return Tensor(xp.ones_like(out.data), name=f"∂L/∂{name}")


def gradient_norms(outputs, forward_nodes, grad_outputs):
    """{id(tensor): norm of its gradient} for the forward tensors that require grad, from a
    second, unrecorded backward pass (non-scalar outputs seeded with ones)."""
    targets = [n.output for n in forward_nodes if n.output is not None
               and n.output.requires_grad]
    targets += leaves(outputs)
    seeds = [Tensor(xp.ones_like(o.data)) for o in outputs] if grad_outputs is None \
        else _as_list(grad_outputs)
    with xp.errstate(all="ignore"):
        grads = grad(outputs, targets, grad_outputs=seeds, allow_unused=True, retain_graph=True)
    return {id(t): norm(g.data) for t, g in zip(targets, grads) if g is not None}


def norm(array):
    """The 2-norm of an array, as a float (inf or nan where the array has them)."""
    array = xp.asarray(array)
    with xp.errstate(all="ignore"):
        if array.dtype in (xp.float32, xp.float64):
            # BLAS's nrm2 scales as it sums: no overflow of the squares, and no float64 copy
            # of a (700, 10000) gradient.
            return float(xp.linalg.norm(array.reshape(-1)))
        return float(xp.sqrt(xp.sum(xp.square(array, dtype=xp.float64))))


def _as_list(grad_outputs):
    return [grad_outputs] if isinstance(grad_outputs, (Tensor, xp.ndarray)) \
        else list(grad_outputs)


class _Builder:
    """Collects the nodes and edges in drawing order. Tensors and graph nodes are looked up by
    id(), so everything keyed here is kept alive (through the roots) until the model is built."""

    def __init__(self, outputs, view, simplify, wrt, grad_outputs, grad_norms):
        self.outputs = outputs
        self.model = Picture(view)
        self.ids = {}            # id(Tensor or graph Node) -> model node id
        self.step = {}           # id(forward graph node) -> its position in forward order
        self.display = {}        # id(forward tensor) -> display name
        self.named = set()       # ids of tensors whose display name is a formula or their own
        self.keys = {}           # id(forward tensor) -> its role's key (f, c, f⊙c), no step
        self.hues = {}           # role key -> hue number, in order of first appearance
        self.drawn = {}          # id(backward tensor) -> its name as drawn
        self.users = {}          # id(forward tensor) -> the forward nodes that read it
        self.log = []            # the simplification's rewrites (Rewrite), when simplified
        self.seeds, self.results = {}, []
        self.sources = []        # per model node: (its tensor, the graph Node or None)
        self.backward_roots = self._graphs(wrt, grad_outputs, simplify)
        forward_nodes = [n for n in nodes(outputs) if not n.is_backward]
        backward_nodes = [n for n in nodes(self.backward_roots) if n.is_backward]
        self._name_forward(forward_nodes)
        self.result_of = {id(g._node): t for t, g in self.results
                          if g._node is not None and g._node.is_backward}
        self.backward_users = {}  # id(backward graph node) -> the backward nodes that read it
        for node in backward_nodes:
            for t in node.inputs:
                if t._node is not None:
                    self.backward_users.setdefault(id(t._node), []).append(node)
        self.aliases = _aliases(self.log, self._name)
        self.merged = _merged_sums(backward_nodes)
        self.summands = _summand_nodes(backward_nodes)
        self.model.backward_count = len(backward_nodes)
        scopes = {}              # in the order the program entered them
        for node in forward_nodes + backward_nodes:
            for depth in range(1, len(node.scope) + 1):
                scopes.setdefault(node.scope[:depth], None)
        self.model.scopes = list(scopes)
        self.norms = gradient_norms(outputs, forward_nodes, grad_outputs) if grad_norms else None
        if self.norms is not None:
            self.model.grad_norms = list(self.norms.values())

        if view in ("forward", "both"):
            for out in outputs:
                if out._node is None:          # an output that is itself a leaf
                    self._tensor_source(out)
            for node in forward_nodes:
                self._forward_node(node)
        if view in ("backward", "both"):
            for node in backward_nodes:
                if id(node) not in self.merged:
                    self._backward_node(node)
            for t, g in self.results:
                if g._node is None or not g._node.is_backward:
                    self._result_without_node(t, g)

    def _graphs(self, wrt, grad_outputs, simplify):
        """The backward graph's roots: the outputs themselves when they are gradients already,
        none for the forward view, otherwise the gradients derived here."""
        if any(t._node is not None and t._node.is_backward for t in self.outputs):
            roots = self.outputs
            self.seeds = _upstream_leaves(roots)
        elif self.model.view == "forward":
            roots = []
        else:
            self.results, self.seeds = derive(self.outputs, wrt, grad_outputs)
            roots = [g for _, g in self.results]
        if simplify and roots:
            report = (simplify if callable(simplify) else simplify_graph)(roots)
            self.log = report.log
            self.model.simplified = (report.nodes_before, report.nodes_after)
            self.results = [(t, new) for (t, _), new in zip(self.results, report.outputs)]
            roots = report.outputs
        return roots

    def _name_forward(self, forward_nodes):
        """Display names for unnamed tensors: a short formula of named inputs (f⊙c_prev), else
        the op and a counter (matmul₂), or tensor₁; and each tensor's role key (its name
        without a time index) for the colours."""
        counters = {}

        def name(t, base):
            if t is not None and not t.name and id(t) not in self.display:
                counters[base] = counters.get(base, 0) + 1
                self.display[id(t)] = f"{base}{_subscript(counters[base])}"

        for node in forward_nodes:
            self.step[id(node)] = len(self.step)
            for t in node.inputs:
                self.users.setdefault(id(t), []).append(node)
            out = node.output
            if out is None:
                continue
            if out.name:
                self.named.add(id(out))
                self.keys[id(out)] = _without_index(out.name)
                continue
            operands = [t for t in node.inputs if not t.constant]
            # Only of inputs with names of their own: f⊙c_prev, never (f⊙c_prev)+(g⊙i).
            if node.prim.formula is not None and operands and all(t.name for t in operands):
                written = self._write(node, self._name).replace(" ", "")
                if len(written) <= DERIVED_MAX:
                    self.display[id(out)] = written
                    self.named.add(id(out))
                    self.keys[id(out)] = self._write(node, self._key).replace(" ", "")
                    continue
            name(out, node.op)
            self.keys[id(out)] = node.op
        for t in self.outputs + [t for n in forward_nodes for t in n.inputs]:
            if t._node is None and not t.constant:
                name(t, "tensor")

    def _name(self, t):
        """A tensor's name as drawn: its own (with the time step it was made in, f₃, unless
        the name carries an index, c2), a formula of named inputs, or the op and a counter."""
        if t.name:
            return stepped_name(t)
        if id(t) in self.display or id(t) in self.drawn:
            return self.display.get(id(t)) or self.drawn[id(t)]
        node = t._node          # a gradient differentiated again (second order): ∂L/∂x
        if node is not None and node.is_backward and node.grad_of is not None:
            return _d(self._name(node.grad_of))
        if node is not None and node.is_backward:     # a vjp's intermediate: its formula
            return self._write(node, self._name)
        return "tensor"

    def _key(self, t):
        return self.keys.get(id(t)) or (_without_index(t.name) if t.name else "tensor")

    def _hue(self, t):
        """The hue of the role tensor t plays (its key), numbered in order of appearance."""
        if t is None or (t._node is None and not t.name):
            return None
        return self.hues.setdefault(self._key(t), len(self.hues))

    def _write(self, node, name_of):
        """The node's op applied to its inputs, each named by name_of (constants by value;
        a formula in parentheses where it is an operand of an operator, not of a call)."""
        call = node.prim.formula is None or CALL.fullmatch(node.prim.formula)
        names = [self._inline(t) if t.constant else name_of(t) if call else _atom(name_of(t))
                 for t in node.inputs]
        if isinstance(node.prim, Mul) and len(names) == 2 and node.inputs[0] is node.inputs[1]:
            return f"{names[0]}²"         # tanh_c ⊙ tanh_c is tanh_c²
        return node.prim.write(names)

    def _equation(self, forward):
        """The equation a forward op is part of, on named values: for an op whose output has
        a name of its own, `name = formula`; for one named by its formula (f⊙c_prev), the
        equation of the op that reads it (c = f⊙c_prev + g⊙i)."""
        named = forward
        for _ in range(4):        # up to the first op whose output has a name of its own
            out = named.output
            users = self.users.get(id(out), []) if out is not None else []
            if out is None or out.name or not users:
                break
            named = users[0]
        if named.output is not None and named.output.name:
            forward = named        # else no name above: the op's own equation
        out = forward.output
        left = self._name(out) if out is not None else forward.op
        return f"{left} = {self._write(forward, self._expanded)}"

    def _expanded(self, t):
        """A tensor in an equation: by its name, or, for one named by a counter (add₁), by
        the formula that made it (x·Wx + h_prev·Wh)."""
        node = t._node
        if t.name or id(t) in self.named or node is None or node.is_backward \
                or node.prim.formula is None:
            return self._name(t)
        return self._write(node, self._name)

    def _is_seed(self, t):
        return id(t) in self.seeds

    # --- nodes and edges ---------------------------------------------------------------------
    def _add(self, kind, t, lines, scope=(), key=None, **fields):
        node = Box(len(self.model.nodes), kind, [str(line) for line in lines],
                    tuple(t.shape), str(t.dtype), tuple(scope), **fields)
        self.model.nodes.append(node)
        self.sources.append((t, key if isinstance(key, Node) else None))
        if key is not None:
            self.ids[id(key)] = node.id
        return node.id

    def _edge(self, tail, head, kind, use=None):
        self.model.edges.append(Arrow(tail, head, kind, use))

    def _forward_node(self, node):
        out = node.output
        head = self._add("op", out, [node.prim.label(node.inputs, self._inline),
                                     self._tensor_line(out)],
                         node.scope, node, step=self.step[id(node)], grad_norm=self._norm_of(out),
                         display=self._name(out), hue=self._hue(out),
                         also=self._also(out, self._name(out)) or None)
        for t in node.inputs:
            if not t.constant:            # constants are written into the op's label
                self._edge(self._tensor_source(t), head, "data")

    def _backward_node(self, node):
        out = node.output
        is_sum = node.role == "accumulate"
        adds = is_sum and _is_add(node)
        op = "Σ" if adds else node.prim.label(node.inputs, self._inline)
        of = self.result_of.get(id(node), node.grad_of)
        parts = self._join_parts(node, of) if is_sum and not adds else None
        extra = [f"[{' | '.join(parts)}]"] if parts else []    # the pieces it joins, in order
        part = "part of " if id(node) in self.summands and id(node) not in self.result_of else ""
        summands = _summands(node, self.merged) if adds else [
            (t, node.grad_sources[k] if is_sum and node.grad_sources else None)
            for k, t in enumerate(node.inputs)]
        written = None if adds else self._write(node, self._drawn_name)
        label = f"{part}{_d(self._name(of))}" if of is not None else written
        if node.role == "recompute" and out is not None and out.name:
            label = f"{self._name(out)} (recomputed)"     # its forward name, not a formula
        self.drawn[id(out)] = label
        head = self._add("sum" if is_sum else "backward", out,
                         [label] + self._also(out, label) + [op] + extra + [_shape_text(out)],
                         node.scope, node,
                         step=self.step.get(id(node.forward_node)),
                         grad_of=self._name(of) if of is not None else None,
                         grad_norm=norm(out.data) if self.norms is not None and of is not None
                         else None, vjp_rule=self._vjp_rule(node, of, part), parts=parts,
                         recomputed=node.role == "recompute",
                         hue=self._hue(of) if of is not None else self._hue(
                             node.forward_node.output if node.forward_node else None))
        operands, uses = [], []
        for t, use in summands:
            if t.constant and not is_sum:
                operands.append({"name": self._inline(t), "const": _constant_value(t)})
                continue                 # written into the op's label instead
            if t.constant:               # a constant gradient term: a small value node
                tail = self._add("constant", t, [self._inline(t)], node.scope)
            else:
                tail = self._tensor_source(t)
            operands.append({"id": tail, "name": self._drawn_name(t)})
            if t.constant or t._node is not None and t._node.is_backward or self._is_seed(t):
                uses.append(self._use_label(use, t, node.scope) if is_sum else None)
                self._edge(tail, head, "gradient", uses[-1])
                if is_sum:
                    operands[-1]["use"] = uses[-1]
            else:
                self._edge(tail, head, "saved")
        drawn = self.model.nodes[head]
        drawn.operands = operands
        if adds:
            drawn.rule = f"{label} = " + " + ".join(f"({u})" for u in uses)
        elif label != written:
            drawn.rule = f"{label} = {written}"
        else:                             # a vjp's intermediate, named by its own formula
            drawn.rule = written + _spelled_out(node, [o["name"] for o in operands])
        drawn.role, drawn.vjp = self._role(node, of, part, len(summands))

    def _also(self, t, label):
        """The other names simplification merged into this tensor: a gradient it stands for
        (∂L/∂tanh_c = o, once 1 ⊙ o became o), as label lines "= ∂L/∂tanh_c"."""
        return [f"= {name}" for name in self.aliases.get(id(t), ()) if name not in label]

    def _join_parts(self, node, of):
        """The names of the pieces a join puts together, in its order: the slices of `of` the
        forward pass cut (A_f, A_g, A_i, A_o), ordered by where they start along the join's
        axis; else the uses the accumulator recorded. (A recorded use can be another tensor's
        slice once simplification merged two identical slice gradients.)"""
        axis = getattr(node.prim, "axis", None)
        slices = [u for u in self.users.get(id(of), ()) if isinstance(u.prim, Slice)] \
            if of is not None and axis is not None else []
        if slices and len(slices) == len(node.inputs):
            def start(u):
                key = u.prim.key[axis % of.ndim] if axis % of.ndim < len(u.prim.key) else None
                return key.start or 0 if isinstance(key, slice) else -1
            return [self._name(u.output) if u.output is not None else "·"
                    for u in sorted(slices, key=start)]
        if not node.grad_sources:
            return None
        return [self._name(u.output) if u is not None and u.output is not None else "·"
                for u in node.grad_sources]

    def _drawn_name(self, t):
        """How a tensor the backward pass reads is named where it is drawn: a gradient by its
        node's label (∂L/∂c₃), a seed by its name, a forward value by its name, a constant by
        its value."""
        if t.constant:
            return self._inline(t)
        if id(t) in self.drawn:
            return self.drawn[id(t)]
        if self._is_seed(t):             # as drawn: the upstream gradient, not the Σ of it
            return f"upstream {self._seed_name(t)}"
        return self._name(t)

    def _seed_name(self, t):
        output = self.seeds[id(t)][1]
        return t.name or (f"∂L/∂{self._name(output)}" if output is not None else "∂L/∂y")

    def _role(self, node, of, part, terms):
        """(role, vjp): one line on what the node is for, and the forward op whose vjp made
        it with that op's equation (None for a Σ or a join, which no vjp made)."""
        name = self._name(of) if of is not None else None
        if node.role == "accumulate":
            if _is_add(node):
                return f"adds up the gradient of {name} over its {terms} uses", None
            return (f"joins the gradients of the {len(node.inputs)} pieces cut from {name} "
                    "back into one, in the order they were cut"), None
        forward = node.forward_node
        if node.role == "recompute":
            return ("recomputed: an op of the checkpointed segment run again by its vjp, so "
                    "the forward pass did not keep this value"), \
                f"vjp of {forward.op}" if forward else None
        vjp = f"vjp of {forward.op} in {self._equation(forward)}" if forward else None
        if of is not None:
            use = forward.output if forward is not None else None
            via = f" through {self._name(use)}" if use is not None else ""
            return (f"one use's share of the gradient of {name}{via}" if part else
                    f"the gradient of {name}{via}"), vjp
        target = self._vjp_target(node)
        if target is not None:
            return f"a factor on the way to {_d(self._name(target.grad_of))}", vjp
        return "an intermediate value of the vjp", vjp

    def _vjp_target(self, node):
        """The node of the gradient that an intermediate node of a vjp goes into."""
        frontier, seen = [node], set()
        while frontier:
            current = frontier.pop(0)
            for user in self.backward_users.get(id(current), ()):
                if id(user) in seen or user.forward_node is not node.forward_node:
                    continue
                seen.add(id(user))
                if user.grad_of is not None:
                    return user
                frontier.append(user)
        return None

    def _vjp_rule(self, node, of, part):
        """The whole formula of the vjp that made a gradient node, in the notation of its op
        (∂L/∂A_f = ∂L/∂f ⊙ f ⊙ (1 − f)); None for the intermediate nodes of a vjp."""
        if of is None:
            return None
        head = f"{part}{_d(self._name(of))} = "
        if node.role == "accumulate":
            return head + ("Σ of the gradients of its uses" if _is_add(node)
                           else "the gradients of its parts, joined")
        forward = node.forward_node
        if forward is None or not any(t is of for t in forward.inputs):
            return None
        k = node.grad_input if node.grad_input is not None else next(
            i for i, t in enumerate(forward.inputs) if t is of)
        template = forward.prim.rule(k)
        if template is None:
            return None
        out = forward.output       # None once nothing holds the forward output any more
        if isinstance(forward.prim, Elementwise) and out is not None and of.shape != out.shape:
            template = f"sum_to({template})"          # the input was broadcast
        y = self._name(out) if out is not None else forward.op
        names = {"gy": _d(y), "y": y}
        names.update({f"x{i}": self._inline(t) if t.constant else self._name(t)
                      for i, t in enumerate(forward.inputs)})
        return head + template.format(**names)

    def _result_without_node(self, wrt, g):
        """A gradient that simplified to a constant or to a forward value still gets a node."""
        value = self._inline(g) if g.constant else self._name(g)
        head = self._add("result", g, [_d(self._name(wrt)), f"= {value}", _shape_text(g)],
                         grad_of=self._name(wrt), rule=f"{_d(self._name(wrt))} = {value}",
                         role="a gradient that simplified to a value no backward op computes")
        if not g.constant:
            self._edge(self._tensor_source(g), head, "saved")

    def _use_label(self, use, summand, sum_scope):
        """Which use of the tensor a summand of its gradient came from (and where, when that
        is another scope than the sum's)."""
        if use is None:
            return "from the output" if self._is_seed(summand) or summand.constant \
                else "partial sum"
        out = use.output
        if out is not None and id(out) in self.named:
            name = self._name(out)
            text = f"via {name}" if use.prim.selects_part else f"via {use.op} → {name}"
        else:
            text = f"via {use.op}"
        return text + (f" [{'/'.join(use.scope)}]" if use.scope and use.scope != sum_scope else "")

    def _tensor_source(self, t):
        """The node that stands for tensor t: its producing node, or a leaf node."""
        if t._node is not None:
            if id(t._node) not in self.ids:   # a forward value drawn in the backward view
                return self._ghost(t)
            return self.ids[id(t._node)]
        if id(t) in self.ids:
            return self.ids[id(t)]
        if self._is_seed(t):
            name = self._seed_name(t)
            seed = self._add("seed", t, [f"upstream {name}", _shape_text(t)], key=t)
            ones = bool(t.data is not None and xp.all(t.data == 1))
            self.model.nodes[seed].rule = f"upstream {name} = " + (
                "the upstream gradient given" if not ones else "1 (the default seed)"
                if t.size == 1 else "1 in every element (the default seed)")
            self.model.nodes[seed].role = "the seed: where the backward pass starts"
            return seed
        return self._add("parameter" if isinstance(t, Parameter) else "tensor", t,
                         [self._name(t), _shape_dtype(t)], key=t, grad_norm=self._norm_of(t),
                         display=self._name(t))

    def _ghost(self, t):
        if id(t) not in self.ids:
            self._add("ghost", t, [self._name(t)] + self._also(t, self._name(t)) +
                      [_shape_text(t)], t._node.scope, t,
                      step=self.step.get(id(t._node)), display=self._name(t), hue=self._hue(t))
        return self.ids[id(t)]

    def _norm_of(self, t):
        return None if self.norms is None else self.norms.get(id(t))

    def _tensor_line(self, t):
        if id(t) in self.named:
            return f"{self._name(t)} {_shape_dtype(t)}"
        return _shape_dtype(t)

    def _inline(self, t):
        """How an input appears inside an op label: constants by value, tensors as ·."""
        if not t.constant:
            return "·"
        flat = t.data.reshape(-1)
        if flat.size and bool(xp.all(flat == flat[0])):
            value = number_text(flat[0])
            return value if t.ndim == 0 else f"{value}[{'×'.join(map(str, t.shape))}]"
        return f"const[{'×'.join(map(str, t.shape))}]"


def _merged_sums(backward_nodes):
    """ids of fan-in add nodes drawn inside a later one: a chain of binary sums of one
    tensor's gradient is drawn as one Σ whose edges name every use."""
    consumers = {}
    for node in backward_nodes:
        for t in node.inputs:
            if t._node is not None:
                consumers.setdefault(id(t._node), []).append(node)
    merged = set()
    for node in backward_nodes:
        users = consumers.get(id(node), [])
        if (node.role == "accumulate" and _is_add(node) and len(users) == 1
                and users[0].role == "accumulate" and _is_add(users[0])
                and users[0].grad_of is node.grad_of):
            merged.add(id(node))
    return merged


def _upstream_leaves(gradients):
    """The seeds of gradients made elsewhere, found by structure: the leaves (not constants,
    not requiring grad) that only backward nodes read. A forward leaf is read by a forward op."""
    found, read_forward = {}, set()
    for node in nodes(gradients):
        for t in node.inputs:
            if node.is_backward:
                if t._node is None and not t.constant and not t.requires_grad:
                    found[id(t)] = (t, None)
            else:
                read_forward.add(id(t))
    return {k: v for k, v in found.items() if k not in read_forward}


def _is_add(node):
    return isinstance(node.prim, Add)


def _summand_nodes(backward_nodes):
    """ids of nodes whose output is one use's share of a gradient that a Σ then sums."""
    shares = set()
    for node in backward_nodes:
        if node.role == "accumulate":
            for t in node.inputs:
                if t._node is not None and t._node.grad_of is node.grad_of \
                        and t._node.role == "vjp":
                    shares.add(id(t._node))
    return shares


def _summands(node, merged):
    """(summand, use) pairs of a Σ, looking through the sums merged into it."""
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        uses = current.grad_sources or (None,) * len(current.inputs)
        for t, use in reversed(list(zip(current.inputs, uses))):
            if t._node is not None and id(t._node) in merged:
                stack.append(t._node)
            else:
                found.append((t, use))
    return found


def _shape_dtype(t):
    return f"{_shape_text(t)} {t.dtype}"


def _shape_text(t):
    return str(tuple(t.shape))


def _subscript(k):
    return str(k).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _aliases(log, name):
    """{id(tensor): the gradients (∂L/∂x) it stands for after simplification}: a rewrite that
    replaced a gradient node by another tensor (an identity, a duplicate) passes that
    gradient's name, and the names it had collected, on to its result."""
    aliases = {}
    for rewrite in log:
        names = []
        for node in rewrite.replaced:
            out = node.output
            names += aliases.get(id(out), []) if out is not None else []
            if node.grad_of is not None and node.role == "vjp":
                names.append(_d(name(node.grad_of)))
        result = rewrite.result
        own = result._node.grad_of if result._node is not None else None
        kept = [n for n in dict.fromkeys(names) if own is None or n != _d(name(own))]
        if kept:
            aliases.setdefault(id(result), [])
            aliases[id(result)] += [n for n in kept if n not in aliases[id(result)]]
    return aliases


def _spelled_out(node, names):
    """What a formula that names a node hides, spelled out: tanh_c² = tanh_c ⊙ tanh_c,
    Whᵀ = Wh transposed; "" where the formula says it all (1 − f)."""
    if isinstance(node.prim, Mul) and len(names) == 2 and node.inputs[0] is node.inputs[1]:
        return f" = {_atom(names[0])} ⊙ {_atom(names[0])}"
    if node.op == "transpose" and names:
        return f" = {names[0]} transposed"
    return ""


def stepped_name(t):
    """A named tensor's name with the time step it was made in (f₃), unless the name carries
    an index of its own (c2)."""
    step = _time_step(t._node.scope) if t._node is not None else None
    return t.name if step is None or INDEXED.search(t.name) else f"{t.name}{_subscript(step)}"


def _time_step(scope):
    """The index k of the innermost time-step scope (see `tinygraph.time_step`), or None."""
    for name in reversed(scope):
        k = time_step_index(name)
        if k is not None:
            return k
    return None


def time_step_index(scope_name):
    """A scope name's time-step index when the model declared it a time step, else None."""
    return scope_name.index if getattr(scope_name, "kind", None) == TIME_STEP else None


def time_step_paths(scopes):
    """{scope path (a tuple of names): k} for the paths (Picture.scopes) that end in time step
    k, so that plain data (the explorer's node dicts) can be matched against them."""
    return {tuple(path): time_step_index(path[-1]) for path in scopes
            if path and time_step_index(path[-1]) is not None}


def _without_index(name):
    """A name without its time index: c2 -> c, f₃ -> f (the role it plays in every step)."""
    return re.sub(r"[0-9₀-₉]+$", "", name) or name


def _atom(name):
    """A name as an operand: in parentheses when it is a formula with spaces at its top
    level (∂L/∂f ⊙ f), as it is (∂L/∂(1 − z), f⊙c_prev) otherwise."""
    if name.startswith(("upstream ", "part of ")):
        return name            # a node's label, not a formula
    depth = 0
    for ch in name:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == " " and depth == 0:
            return f"({name})"
    return name


def _constant_value(t):
    """A uniform constant's value as a number (for evaluating a rule), else None."""
    flat = t.data.reshape(-1)
    if flat.size and bool(xp.all(flat == flat[0])):
        return float(flat[0])
    return None
