"""Op nodes: the records that make a computation a graph.

A node holds the primitive that produced a tensor, that primitive's inputs (strongly: they are
the saved values its vjp reads) and its output (weakly: the output owns the node, so a strong
link back would make a reference cycle that only the cyclic collector could free). So a node
does not keep its own output alive: hold on to the output tensors you want to inspect.

A node also records the version of each input when it saved it (see Tensor.data): a backward
pass refuses to run a vjp whose saved values changed since. A backward pass that does not
retain the graph releases each node's inputs once its vjp has run (`released`), so memory
goes as the pass goes, and a second pass through the node raises instead of summing again.
"""
import itertools
import weakref

from .state import current


class Node:
    """One application of a primitive.

    Attributes:
        op: the primitive's short, stable name ("matmul", "slice", "concat", ...).
        prim: the primitive object (its forward, vjp and attributes).
        inputs: the input tensors, in order.
        is_backward: True when the node was created by a vjp or by gradient accumulation,
            i.e. it belongs to a generated backward graph.
        forward_node: for a backward node, the forward node whose vjp created it (None for
            the fan-in sums and seeds the engine adds itself).
        role: None for forward nodes; "vjp" or "accumulate" for backward nodes.
        grad_of: for a backward node whose output is a gradient (or one use's contribution
            to it), the forward tensor it is the gradient of; None for intermediate values.
        grad_input: with grad_of, the position of that tensor among the forward node's inputs
            (a tensor can be read twice, as in x / x).
        grad_sources: for an "accumulate" node, the forward nodes whose use of the tensor each
            summand came from (None where a summand is an earlier partial sum).
        scope: the names of the `tinygraph.scope` blocks the node was created in; backward
            nodes take their forward node's scope.
        versions: the inputs' versions, then the output's, when the node saved them (see
            Tensor.version); None when all were 0.
        released: True once a backward pass that did not retain the graph ran the node's vjp
            and dropped its inputs (`inputs` is then empty).
        digests: what the interpreter in force keeps to verify the saved values before the
            vjp runs (detect_anomaly's digests, catching raw writes into their arrays): an
            object with verify(node, output); None otherwise.
    """

    __slots__ = ("prim", "inputs", "_output", "is_backward", "forward_node", "role", "grad_input",
                 "grad_of", "grad_sources", "scope", "serial", "versions", "released",
                 "digests", "__weakref__")

    # Creation order: a node's inputs always come from earlier nodes, so sorting by it is a
    # topological order that follows the program as written.
    _serials = itertools.count()

    def __init__(self, prim, inputs, output, state=None):
        state = current() if state is None else state
        self.serial = next(Node._serials)
        self.prim = prim
        self.inputs = inputs = tuple(inputs)
        # The inputs' versions, then the output's (a view shares its base's); None: all 0
        # (fresh activations, the common case).
        self.versions = None
        for t in inputs:                  # (the hot path: most tensors are at version 0)
            if t._version is not None and t._version[0]:
                self.versions = _saved_versions(inputs, output)
                break
        else:
            if output._version is not None and output._version[0]:
                self.versions = _saved_versions(inputs, output)
        self.released = False
        # detect_anomaly() also keeps a digest of every saved value, to catch raw writes.
        self.digests = state.interpreter.saved(inputs, output) \
            if state.interpreter is not None else None
        self._output = weakref.ref(output)
        self.forward_node = state.backward_of
        self.role = state.backward_role
        self.is_backward = self.role is not None
        self.grad_of = None
        self.grad_input = None
        self.grad_sources = None
        self.scope = state.scope if self.forward_node is None else self.forward_node.scope

    @property
    def scope_kinds(self):
        """The kind of each scope in `scope` (see `tinygraph.scope`): "time step", "layer" or
        None, outermost first."""
        return tuple(getattr(name, "kind", None) for name in self.scope)

    @property
    def op(self):
        """The primitive's short, stable name ("matmul", "slice", "concat", ...)."""
        return self.prim.name

    @property
    def attrs(self):
        """The primitive's static attributes (axis, shape, key, ...), for display and rewrites."""
        return self.prim.attrs()

    @property
    def output(self):
        """The tensor this node produced, or None once nothing else holds on to it."""
        return self._output()

    @property
    def outputs(self):
        """The output as a one-element tuple (every primitive has one output)."""
        return (self._output(),)

    def __repr__(self):
        kind = f" backward of {self.forward_node.op}" if self.forward_node is not None else ""
        if self.role == "accumulate":
            kind = f" {self.role}"
        shapes = ", ".join(str(t.shape) for t in self.inputs)
        return f"<Node {self.op}({shapes}){kind}>"


def _saved_versions(inputs, output):
    """[the inputs' versions..., the output's]."""
    return [0 if t._version is None else t._version[0] for t in inputs + (output,)]
