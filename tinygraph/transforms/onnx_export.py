"""Export any tinygraph graph — a forward graph or a generated backward graph — as ONNX.

    grads = tg.grad(loss, params, create_graph=True)          # the backward graph, recorded
    tg.export_onnx([loss, *grads], inputs=[x], path="lstm.onnx")

Every op node becomes standard ONNX operators (MatMul, Add, Mul, Sigmoid, Tanh, Slice,
Concat, ReduceSum, Gather, ScatterND, LogSoftmax, ...); the leaves listed as `inputs` become
the graph's inputs and every other leaf an initializer holding its current value. Tensors
keep their names (a gradient is named `∂L/∂Wx` as in the diagrams), so Netron shows what
tinygraph draws. Every primitive is in MAPPINGS or in REFUSED, with the reason it has no
mapping (dropout_mask: export in eval mode); export raises a ValueError naming it and why.
Ids checked by ids_in_range stay checked: an id outside [0, size) fails the run. onnx is an
optional dependency (`pip install -e '.[onnx]'`).

dynamic_batch=True makes the first axis of every input a symbolic "batch" dimension, and
shapes whose leading axis is the traced batch size (broadcasts, the zeros of a scatter) take
it from the first input at run time (reshape targets get -1 there): trace with a batch size
that no other leading axis has. Values computed from the batch size at trace time stay those
of the traced batch: a constant of that shape (a recurrent layer's zero initial state; export
warns about it) and a scalar such as a mean's 1/count (export cannot see it: a mean over the
batch gives wrong values at another batch size). Check an export at another batch size before
relying on it.
"""
import warnings

from ..backend import xp
from .checkpoint import Segment
from ..core.autodiff import nodes
from ..core.primitive import StopGradient
from ..core.tensor import Parameter, Tensor
from ..ops import elementwise as ew, indexing, linalg, losses, random as rand, shape as shp
from ..ops import select
from ..ops.indexing import INDEX_SLOT

OPSET = 18


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise ImportError(f"export_onnx needs the onnx package ({e}); install it with "
                          "pip install -e '.[onnx]'") from None
    return onnx, helper, numpy_helper


class _Graph:
    """The ONNX nodes, initializers and unique names being written."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self.used, self.names = [], [], set(), {}
        self.batch_input = None          # the graph input whose first axis is the batch

    def unique(self, base):
        base = base or "t"
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def name_of(self, tensor):
        return self.names[id(tensor)]

    def constant(self, array, base="const"):
        name = self.unique(base)
        self.initializers.append(self.numpy_helper.from_array(xp.asarray(array), name))
        return name

    def ints(self, values, base="shape"):
        return self.constant(xp.asarray(values, dtype=xp.int64), base)

    def shape(self, shape, batch):
        """A shape input; with a dynamic batch, a leading axis of the traced batch size is
        read from the first graph input at run time (Shape, Slice, Concat)."""
        shape = list(shape)
        if not (batch and shape and shape[0] == batch and self.batch_input):
            return self.ints(shape)
        size = self.op("Slice", [self.op("Shape", [self.batch_input]), self.ints([0], "starts"),
                                 self.ints([1], "ends")])
        return self.op("Concat", [size, self.ints(shape[1:])], axis=0) if shape[1:] else size

    def op(self, op_type, inputs, out=None, **attrs):
        out = out or self.unique(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def export_onnx(outputs, inputs, path=None, dynamic_batch=False, opset=OPSET,
                graph_name="tinygraph"):
    """Write the graph behind `outputs` (a Tensor or a list) as an ONNX model to `path`
    (None: only return it); `inputs` are the leaves that become the graph's inputs, in
    order. Returns the onnx.ModelProto, checked with onnx.checker."""
    onnx, helper, numpy_helper = _onnx()
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = list(inputs)
    for t in outputs + inputs:
        if not isinstance(t, Tensor) or t.is_abstract:
            raise TypeError(f"export_onnx: outputs and inputs must be Tensors with values, got "
                            f"{t!r}")
    graph = _Graph(helper, numpy_helper)
    batch = inputs[0].shape[0] if dynamic_batch and inputs and inputs[0].ndim else None
    graph_inputs = []
    for k, t in enumerate(inputs):
        if t._node is not None:
            raise ValueError(f"export_onnx: input {k} ({t.name or 'unnamed'}) is computed by "
                             "an op; inputs must be leaves")
        graph.names[id(t)] = graph.unique(t.name or f"input{k}")
        if k == 0 and batch is not None:
            graph.batch_input = graph.names[id(t)]
        dims = ["batch" if (dynamic_batch and d == 0) else n for d, n in enumerate(t.shape)]
        graph_inputs.append(helper.make_tensor_value_info(
            graph.names[id(t)], helper.np_dtype_to_tensor_dtype(t.dtype), dims))
    # The outputs' names first, so that a gradient output is ∂L/∂Wx and the partial sums
    # and per-use terms of the same gradient inside the graph get the suffixes.
    reserved = {}
    for t in outputs:
        if t._node is not None and id(t) not in reserved:
            reserved[id(t)] = graph.unique(_display_name(t._node))
    for node in nodes(outputs):
        for t in node.inputs:
            if id(t) not in graph.names and t._node is None:
                graph.names[id(t)] = graph.constant(t.data, t.name or "const")
                if batch is not None and t.ndim > 1 and t.shape[0] == batch and \
                        not isinstance(t, Parameter):
                    warnings.warn(f"export_onnx: dynamic_batch: {graph.names[id(t)]} "
                                  f"{t.shape} is a constant of the traced batch size; the "
                                  "model only runs with that batch size unless it is an input",
                                  stacklevel=2)
        mapping = MAPPINGS.get(type(node.prim))
        if mapping is None:
            why = REFUSED.get(type(node.prim), "none is written for it")
            raise ValueError(f"export_onnx: no ONNX mapping for primitive {node.prim.name!r} "
                             f"({why})")
        out_name = reserved.get(id(node.output)) or graph.unique(_display_name(node))
        mapping(graph, node, [graph.name_of(t) for t in node.inputs], out_name,
                batch=batch)
        graph.names[id(node.output)] = out_name
    graph_outputs = []
    for k, t in enumerate(outputs):
        if id(t) not in graph.names:                  # an output that is a leaf
            graph.names[id(t)] = graph.constant(t.data, t.name or f"output{k}")
        name = graph.name_of(t)
        if name in [o.name for o in graph_outputs] or name in {i.name for i in graph_inputs}:
            name = graph.op("Identity", [name], graph.unique(f"{name}_out"))
        dims = ["batch" if (batch is not None and d == 0 and n == batch) else n
                for d, n in enumerate(t.shape)]
        graph_outputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(t.dtype), dims))
    model = helper.make_model(
        helper.make_graph(graph.nodes, graph_name, graph_inputs, graph_outputs,
                          graph.initializers),
        opset_imports=[helper.make_opsetid("", opset)], producer_name="tinygraph")
    model.ir_version = min(model.ir_version, 9)       # what current runtimes accept
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def _display_name(node):
    """The name a node's output gets: its tensor name, ∂L/∂x for a gradient, else the op."""
    out = node.output
    if out.name:
        return out.name
    of = node.grad_of
    if of is not None:
        return f"∂L/∂{of.name or (of._node.prim.name if of._node is not None else 'x')}"
    return node.prim.name


# --- the mappings: (graph, node, input names, output name, batch) -> writes nodes -------------

def _simple(op_type):
    def write(g, node, ins, out, batch):
        g.op(op_type, ins, out)
    return write


def _pow(g, node, ins, out, batch):
    exponent = g.constant(xp.asarray(node.prim.exponent, dtype=node.output.dtype), "exponent")
    g.op("Pow", [ins[0], exponent], out)


def _heaviside(g, node, ins, out, batch):
    zero = g.constant(xp.zeros((), node.inputs[0].dtype), "zero")
    positive = g.op("Greater", [ins[0], zero])
    g.op("Cast", [positive], out, to=_tensor_type(g, node.output.dtype))


def _tensor_type(g, dtype):
    return g.helper.np_dtype_to_tensor_dtype(xp.dtype(dtype))


def _matmul_tn(g, node, ins, out, batch):
    a = node.inputs[0]
    perm = list(range(a.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    g.op("MatMul", [g.op("Transpose", [ins[0]], perm=perm), ins[1]], out)


def _sum(g, node, ins, out, batch):
    axes = node.prim.axis
    if not axes:                        # ONNX's ReduceSum sums everything over no axes
        g.op("Identity", ins, out)
        return
    g.op("ReduceSum", [ins[0], g.ints(list(axes), "axes")], out,
         keepdims=int(node.prim.keepdims))


def _target_shape(shape, batch, allow_minus_one=True):
    """A shape attribute, with the traced batch size made symbolic where possible: -1 for a
    leading axis that is a multiple of it (a reshape infers it)."""
    shape = list(shape)
    if batch and allow_minus_one and shape and shape[0] % batch == 0 and -1 not in shape:
        shape[0] = -1
    return shape


def _reshape(g, node, ins, out, batch):
    g.op("Reshape", [ins[0], g.ints(_target_shape(node.prim.shape, batch), "shape")], out)


def _broadcast_to(g, node, ins, out, batch):
    g.op("Expand", [ins[0], g.shape(node.prim.shape, batch)], out)


def _sum_to(g, node, ins, out, batch):
    src, shape = node.inputs[0].shape, node.prim.shape
    lead = len(src) - len(shape)
    axes = list(range(lead)) + [lead + i for i, n in enumerate(shape)
                                if n == 1 and src[lead + i] != 1]
    summed = g.op("ReduceSum", [ins[0], g.ints(axes, "axes")], keepdims=1) if axes else ins[0]
    g.op("Reshape", [summed, g.ints(_target_shape(shape, batch), "shape")], out)


def _transpose(g, node, ins, out, batch):
    g.op("Transpose", ins, out, perm=list(node.prim.axes))


def _concat(g, node, ins, out, batch):
    g.op("Concat", ins, out, axis=node.prim.axis)


def _basic_key(key, shape):
    """A basic key (ints, slices, Ellipsis) as (starts, ends, axes, steps, int axes)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is None for k in key):
        raise ValueError("export_onnx: slices that add axes (None) have no mapping yet")
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1:]
    starts, ends, axes, steps, dropped = [], [], [], [], []
    for axis, (k, n) in enumerate(zip(key, shape)):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if (start, stop, step) == (0, n, 1):
                continue
            if step < 0:
                raise ValueError("export_onnx: slices with negative steps have no mapping yet")
        else:
            start, stop, step = int(k) % n, int(k) % n + 1, 1
            dropped.append(axis)
        starts.append(start)
        ends.append(stop)
        axes.append(axis)
        steps.append(step)
    return starts, ends, axes, steps, dropped


def _slice(g, node, ins, out, batch):
    starts, ends, axes, steps, dropped = _basic_key(node.prim.key, node.inputs[0].shape)
    result = ins[0]
    if axes:
        result = g.op("Slice", [result, g.ints(starts, "starts"), g.ints(ends, "ends"),
                                g.ints(axes, "axes"), g.ints(steps, "steps")])
    if dropped:
        result = g.op("Squeeze", [result, g.ints(dropped, "axes")])
    g.op("Identity", [result], out)


def _slice_grad(g, node, ins, out, batch):
    shape = node.prim.shape
    starts, ends, axes, steps, dropped = _basic_key(node.prim.key, shape)
    if any(s != 1 for s in steps):
        raise ValueError("export_onnx: the gradient of a strided slice has no mapping yet")
    piece = g.op("Unsqueeze", [ins[0], g.ints(dropped, "axes")]) if dropped else ins[0]
    before, after = [0] * len(shape), [0] * len(shape)
    for start, end, axis in zip(starts, ends, axes):
        before[axis], after[axis] = start, shape[axis] - end
    g.op("Pad", [piece, g.ints(before + after, "pads")], out)


def _gather_key(node):
    """For keys of integer arrays in the leading axes (then full slices): how many."""
    key = node.prim.key
    count = 0
    while count < len(key) and key[count] is INDEX_SLOT:
        count += 1
    if count == 0 or any(not (isinstance(k, slice) and k == slice(None)) for k in key[count:]):
        raise ValueError(f"export_onnx: {node.prim.name} with key {key!r} has no mapping yet "
                         "(integer arrays in the leading axes are mapped)")
    ids = [t for t in node.inputs if t.dtype.kind in "iu"][-count:]
    if len({t.shape for t in ids}) > 1:
        raise ValueError(f"export_onnx: {node.prim.name} with index arrays of shapes "
                         f"{[t.shape for t in ids]} (broadcast indices) has no mapping yet")
    return count


def _int64(g, name):
    return g.op("Cast", [name], to=g.helper.np_dtype_to_tensor_dtype(xp.dtype(xp.int64)))


def _stacked_indices(g, names):
    """Index arrays (same shape) -> int64 indices with a last axis of len(names)."""
    parts = [g.op("Unsqueeze", [_int64(g, n), g.ints([-1], "axes")]) for n in names]
    return parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=-1)


def _index(g, node, ins, out, batch):
    count = _gather_key(node)
    if count == 1:
        g.op("Gather", [ins[0], _int64(g, ins[1])], out, axis=0)
    else:
        g.op("GatherND", [ins[0], _stacked_indices(g, ins[1:])], out)


def _zeros(g, shape, dtype, batch=None):
    value = g.helper.make_tensor("value", _tensor_type(g, dtype), [1], [0])
    return g.op("ConstantOfShape", [g.shape(shape, batch)], value=value)


def _index_grad(g, node, ins, out, batch):
    _gather_key(node)
    zeros = _zeros(g, node.prim.shape, node.output.dtype, batch)
    g.op("ScatterND", [zeros, _stacked_indices(g, ins[1:]), ins[0]], out, reduction="add")


def _ids_in_range(g, node, ins, out, batch):
    """ONNX has no assert, and its Gather reads a negative id from the end as numpy does. So
    the ids pass through a Gather that fails: as the one row of a (1, ...) tensor, read at
    the count of ids outside [0, size) -- row 0 when there are none, out of bounds else.
    The node's name says why in ONNX Runtime's error."""
    ids = _int64(g, ins[0])
    outside = g.op("Or", [g.op("Less", [ids, g.ints(0, "zero")]),
                          g.op("GreaterOrEqual", [ids, g.ints(node.prim.size, "size")])])
    count = g.op("ReduceSum", [_int64(g, outside)], keepdims=0)
    row = g.op("Unsqueeze", [ins[0], g.ints([0], "axes")])
    g.op("Gather", [row, count], out, axis=0,
         name=f"{out}: an id outside [0, {node.prim.size}) fails this Gather")


def _log_softmax(g, node, ins, out, batch):
    g.op("LogSoftmax", ins, out, axis=node.prim.axis)


def _log_softmax_grad(g, node, ins, out, batch):
    grad, y = ins
    total = g.op("ReduceSum", [grad, g.ints([node.prim.axis], "axes")], keepdims=1)
    g.op("Sub", [grad, g.op("Mul", [g.op("Exp", [y]), total])], out)


def _log_softmax_grad_at(g, node, ins, out, batch):
    v, y, rows, classes = ins
    n = node.inputs[1].shape[0]
    sums = g.op("ScatterND", [_zeros(g, (n,), node.output.dtype, batch),
                              _stacked_indices(g, [rows]),
                              v], reduction="add")
    scaled = g.op("Neg", [g.op("Mul", [g.op("Exp", [y]),
                                       g.op("Unsqueeze", [sums, g.ints([-1], "axes")])])])
    g.op("ScatterND", [scaled, _stacked_indices(g, [rows, classes]), v], out,
         reduction="add")


_COMPARISONS = {"greater": "Greater", "greater_equal": "GreaterOrEqual", "less": "Less",
                "less_equal": "LessOrEqual", "equal": "Equal"}


def _compare(g, node, ins, out, batch):
    comparison = node.prim.comparison
    if comparison == "not_equal":
        g.op("Not", [g.op("Equal", ins)], out)
    else:
        g.op(_COMPARISONS[comparison], ins, out)


def _cast(g, node, ins, out, batch):
    g.op("Cast", ins, out, to=_tensor_type(g, node.prim.dtype))


def _extreme(op_type):
    def write(g, node, ins, out, batch):
        g.op(op_type, [ins[0], g.ints(list(node.prim.axis), "axes")], out,
             keepdims=int(node.prim.keepdims))
    return write


def _arg_extreme(op_type):
    """ArgMax/ArgMin give int64 (numpy's intp here); axis None: of the flattened input."""
    def write(g, node, ins, out, batch):
        axis, keep = node.prim.axis, int(node.prim.keepdims)
        if axis is not None:
            g.op(op_type, ins, out, axis=axis, keepdims=keep)
            return
        flat = g.op("Reshape", [ins[0], g.ints([-1], "shape")])
        found = g.op(op_type, [flat], axis=0, keepdims=0)
        g.op("Reshape", [found, g.ints(list(node.output.shape), "shape")], out)
    return write


MAPPINGS = {
    ew.Add: _simple("Add"), ew.Sub: _simple("Sub"), ew.Mul: _simple("Mul"),
    ew.Div: _simple("Div"), ew.Neg: _simple("Neg"), ew.Exp: _simple("Exp"),
    ew.Log: _simple("Log"), ew.Sigmoid: _simple("Sigmoid"), ew.Tanh: _simple("Tanh"),
    ew.Relu: _simple("Relu"), ew.Pow: _pow, ew.Heaviside: _heaviside,
    ew.Abs: _simple("Abs"), ew.Sqrt: _simple("Sqrt"), ew.Cast: _cast,
    linalg.MatMul: _simple("MatMul"), linalg.MatMulTN: _matmul_tn,
    shp.Sum: _sum, shp.Reshape: _reshape, shp.BroadcastTo: _broadcast_to, shp.SumTo: _sum_to,
    shp.Transpose: _transpose, shp.Concat: _concat,
    indexing.Slice: _slice, indexing.SliceGrad: _slice_grad, indexing.Index: _index,
    indexing.IndexGrad: _index_grad, indexing.IdsInRange: _ids_in_range,
    losses.LogSoftmax: _log_softmax, losses.LogSoftmaxGrad: _log_softmax_grad,
    losses.LogSoftmaxGradAt: _log_softmax_grad_at,
    StopGradient: _simple("Identity"),
    select.Compare: _compare, select.Where: _simple("Where"),
    select.Max: _extreme("ReduceMax"), select.Min: _extreme("ReduceMin"),
    select.ArgMax: _arg_extreme("ArgMax"), select.ArgMin: _arg_extreme("ArgMin"),
}

# Primitives with no mapping, and why: export names the primitive and says this.
REFUSED = {
    rand.DropoutMask: "it draws random numbers: export the model in eval mode",
    Segment: "a checkpointed segment (tg.checkpoint) stands for ops it does not record: export "
             "the model without checkpointing (it changes only what a backward pass keeps)",
}
