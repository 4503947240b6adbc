"""Fusion of elementwise chains: a run of elementwise steps of a program as one loop.

An LSTM step at batch 1 is mostly elementwise ops on (1, H) arrays: the gates' sigmoids
(seven numpy calls each), tanh, the products and sums of the cell, and their vjps. Each numpy
call costs about half a microsecond at that size, whatever it computes, so the step's cost is
the number of calls. A fused kernel computes a whole run of them in one call: one loop over
the elements whose body is the ops written on scalars, each op's text given by its primitive
(`Primitive.scalar`), so a kernel is generated from the ops it replaces, never written by hand.

A group is a run of consecutive steps of a program (so moving them into one step changes no
order) whose primitives have a scalar form, with one output shape and one floating dtype,
every operand of that dtype. Its values read after the run, or handed out, are the kernel's
outputs, written to arrays; the others live in the loop as scalars and are never stored.
Operands of another shape are broadcast by their index (0 along a broadcast axis).

exp, log and tanh stay numpy's (its SIMD loops round otherwise than libm's): a group whose
ops call them runs as kernels in stages with those numpy calls between them, on scratch
arrays (`_stages`), so a fused group computes bitwise what the ops it replaces compute (but
for the sign bit of a NaN); the sigmoid of an LSTM gate is then one numpy exp between two
loops instead of seven calls.

The loop needs a compiler to pay: numba's @njit where numba is installed (the optional
`fast` extra). Without one, codegen fuses nothing: the program runs op by op, which is the
same computation, so correctness never depends on numba.
"""
import ast
import math

from ..backend import xp

# Fused only up to this many elements: there a step's cost is numpy's call overhead (about
# half a microsecond each), which a kernel saves; beyond it numpy's SIMD loops win. Measured
# (compiled steps, fused / unfused): batch-1 sine LSTM, (1, 100) gates, 37 / 49 us per time
# step; small LM, (20, 100), 44 / 44 ms; medium LM, (20, 650), 410 / 390 ms.
MAX_ELEMENTS = 1 << 12
# numba computes float16 otherwise than numpy (which rounds each op from float32), if at all.
KERNEL_DTYPES = (xp.dtype(xp.float32), xp.dtype(xp.float64))
# Calls in scalar forms that numpy computes between kernels (its SIMD loops round otherwise
# than libm's by an ulp or two): name -> numpy's function.
NUMPY_CALLS = {"exp": xp.exp, "log": xp.log, "tanh": xp.tanh}


def numba_jit():
    """The compiler of fused kernels: numba's njit where installed, else None (no fusion).
    error_model="numpy": a division by zero gives inf or NaN as numpy does, not an error."""
    try:                    # optional (pip install tinygraph[fast]); imported when first needed
        import numba
    except ImportError:
        return None
    return numba.njit(error_model="numpy", cache=False)


def kernel_namespace(dtype):
    """What a kernel's scalar code may call: sqrt (correctly rounded, as numpy's), and T, the
    scalar type of its dtype, for numbers (T(1) stays float32 in a float32 kernel; a bare 1.0
    would widen it to float64)."""
    return {"sqrt": math.sqrt, "T": xp.dtype(dtype).type}


class Group:
    """One fused step: steps[first:last + 1] of a program, computed by one kernel, or by
    kernels in stages with numpy's exp, log or tanh between them (see `_stages`).

    inputs: the slots it reads that none of its steps makes; outputs: the slots of its steps
    read after it or handed out (the others are never stored); shape, dtype: of every value
    it makes; stages: [Stage, or None where one has nothing to compute]; calls: per stage
    after the first, the numpy functions run before it, [(function name, what it reads:
    ("slot", s) or ("scratch", n), the scratch index it writes)]; n_scratch: how many scratch
    arrays of the group's shape its stages pass values through."""

    def __init__(self, first, last, inputs, outputs, shape, dtype, ops, stages, calls,
                 n_scratch):
        self.first, self.last = first, last
        self.inputs, self.outputs = inputs, outputs
        self.shape, self.dtype, self.ops = shape, dtype, ops
        self.stages, self.calls, self.n_scratch = stages, calls, n_scratch

    @property
    def members(self):
        return range(self.first, self.last + 1)


class Stage:
    """One kernel of a group: source (its code, the function named `kernel`; the same for
    every group with the same ops on the same shapes, so one compiled kernel serves them
    all), reads and writes: its array arguments in order, each ("slot", s) or ("scratch", n)."""

    def __init__(self, source, reads, writes):
        self.source, self.reads, self.writes = source, reads, writes


def groups(program, kept):
    """The fused groups of a program: maximal runs of consecutive steps that can be fused,
    each of at least two ops (or one op that numpy computes in several calls, sigmoid)."""
    specs = slot_specs(program)
    last_read = _last_reads(program.steps)
    found, run, key = [], [], None
    for k in range(len(program.steps)):
        step_key = _fusible(program, k, specs)
        if run and step_key != key:
            found.append(run)
            run = []
        if step_key is not None:
            run.append(k)
        key = step_key
    if run:
        found.append(run)
    result = []
    for run in found:
        prims = [program.steps[k][0].__self__ for k in run]
        if len(run) >= 2 or prims[0].ufunc is None:
            result.append(_group(program, run, specs, last_read, kept))
    return result


def slot_specs(program):
    """{slot: (shape, dtype)} of every value of the program."""
    specs = dict(enumerate(program.input_specs))
    specs.update(program.leaf_specs)
    for (_, _, out), spec in zip(program.steps, program.specs):
        specs[out] = spec
    return specs


def _last_reads(steps):
    last = {}
    for k, (_, ins, _) in enumerate(steps):
        for s in ins:
            last[s] = k
    return last


def _fusible(program, k, specs):
    """(shape, dtype) of step k's result where it can be fused into a kernel, else None."""
    forward, ins, _ = program.steps[k]
    prim = forward.__self__
    shape, dtype = program.specs[k]
    dtype = xp.dtype(dtype)
    scalar = getattr(prim, "scalar", None)
    if scalar is None or dtype not in KERNEL_DTYPES:
        return None
    size = math.prod(shape)
    if not 0 < size <= MAX_ELEMENTS:
        return None
    for s in ins:
        in_shape, in_dtype = specs[s]
        if xp.dtype(in_dtype) != dtype or len(in_shape) > len(shape):
            return None
    if scalar(*[f"x{j}" for j in range(len(ins))]) is None:
        return None
    return shape, dtype


def _group(program, run, specs, last_read, kept):
    first, last = run[0], run[-1]
    made = {program.steps[k][2] for k in run}
    inputs = []
    for k in run:
        for s in program.steps[k][1]:
            if s not in made and s not in inputs:
                inputs.append(s)
    outputs = [program.steps[k][2] for k in run
               if program.steps[k][2] in kept or last_read.get(program.steps[k][2], -1) > last]
    shape, dtype = program.specs[first]
    ops = [program.steps[k][0].__self__.name for k in run]
    stages, calls, n_scratch = _stages(program, run, inputs, outputs, specs, shape, dtype)
    return Group(first, last, inputs, outputs, shape, xp.dtype(dtype), ops, stages, calls,
                 n_scratch)


def _stages(program, run, inputs, outputs, specs, shape, dtype):
    """The group's kernels. numpy's exp, log and tanh are SIMD loops whose results differ
    from libm's by an ulp or two, so a kernel never calls them: each call in an op's scalar
    form becomes a value u computed by numpy, in place, on a scratch array the kernel before
    it wrote the argument into; the values that depend on it go to the next kernel. The
    fused group then computes exactly what the ops it replaces compute, bitwise.

    A value's level is the number of such calls on its way from the inputs; stage s computes
    the values of level s and the arguments of the calls whose results have level s + 1."""
    names = {s: f"x{j}" for j, s in enumerate(inputs)}
    level = {f"x{j}": 0 for j in range(len(inputs))}
    computed = []            # (name, expression, level, comment), in program order
    libm = {}                # (function, argument's code) -> u name
    calls = []               # (u name, function, argument expression, argument's level)
    for m, k in enumerate(run):
        forward, ins, out = program.steps[k]
        prim = forward.__self__
        tree = ast.parse(prim.scalar(*[names[s] for s in ins]), mode="eval")
        tree = _CallsOut(libm, calls, level).visit(tree)
        names[out] = f"t{m}"
        level[f"t{m}"] = _level(tree, level)
        computed.append((f"t{m}", ast.unparse(tree), level[f"t{m}"], prim.name))
    n_stages = 1 + max([lv for _, _, lv, _ in computed] + [0])
    scratch = {}             # name -> scratch index: call arguments (then results), carried
    for u, _, _, _ in calls:
        scratch[u] = len(scratch)
    out_names = {names[s]: s for s in outputs}
    uses = {}                # name -> the stages that read it
    for name, code, lv, _ in computed:
        for used in _names(code):
            uses.setdefault(used, set()).add(lv)
    for u, _, code, lv in calls:
        for used in _names(code):
            uses.setdefault(used, set()).add(lv)
    for name, _, lv, _ in computed:     # a value read by a later kernel, not an output
        if name not in out_names and any(s > lv for s in uses.get(name, ())) \
                and name not in scratch:
            scratch[name] = len(scratch)
    inputs_by_name = {f"x{j}": ("slot", s) for j, s in enumerate(inputs)}
    where = dict(inputs_by_name)
    where.update({name: ("slot", s) for name, s in out_names.items()})
    where.update({name: ("scratch", n) for name, n in scratch.items()})
    stages = []
    for stage in range(n_stages):
        lines = [(name, code, op) for name, code, lv, op in computed if lv == stage]
        lines += [(f"a{scratch[u]}", code, f"argument of {fn}") for u, fn, code, lv in calls
                  if lv == stage and code not in inputs_by_name]
        stages.append(_stage_source(stage, n_stages, lines, where, scratch, out_names,
                                    specs, shape, dtype))
    # A call on an input reads the input's array itself: no copy into the scratch first.
    between = [[(fn, inputs_by_name.get(code, ("scratch", scratch[u])), scratch[u])
                for u, fn, code, lv in calls if lv == stage - 1]
               for stage in range(1, n_stages)]
    return stages, between, len(scratch)


class _CallsOut(ast.NodeTransformer):
    """Replaces each call of exp, log or tanh by a name u (the same name for the same call),
    recording (u, function, argument's code, argument's level)."""

    def __init__(self, libm, calls, level):
        self.libm, self.calls, self.level = libm, calls, level

    def visit_Call(self, node):
        self.generic_visit(node)             # calls inside the argument first
        if isinstance(node.func, ast.Name) and node.func.id in NUMPY_CALLS:
            arg = node.args[0]
            key = (node.func.id, ast.unparse(arg))
            u = self.libm.get(key)
            if u is None:
                u = self.libm[key] = f"u{len(self.libm)}"
                arg_level = _level(arg, self.level)
                self.calls.append((u, node.func.id, key[1], arg_level))
                self.level[u] = arg_level + 1
            return ast.copy_location(ast.Name(id=u, ctx=ast.Load()), node)
        return node


def _names(code):
    return {n.id for n in ast.walk(ast.parse(code, mode="eval")) if isinstance(n, ast.Name)}


def _level(tree, level):
    return max([level.get(n.id, 0) for n in ast.walk(tree) if isinstance(n, ast.Name)] + [0])


def _order(name):
    return "xtua".index(name[0]), int(name[1:])


def _stage_source(stage, n_stages, lines, where, scratch, out_names, specs, shape, dtype):
    """One kernel: loops over the output's axes; in the body, every array it reads read at
    the index first (so an output may share memory with an input of its shape), then one line
    per value, then the values later kernels or the program read stored."""
    if not lines:            # (a first stage with only calls on inputs: nothing to run)
        return None
    idx = [f"i{d}" for d in range(len(shape))]
    made_here = {name for name, _, _ in lines}
    read = sorted({n for _, code, _ in lines for n in _names(code)
                   if n in where and n not in made_here}, key=_order)
    reads = [where[n] for n in read]
    stored = [name for name, _, _ in lines
              if name in out_names or (name in scratch and name[0] == "t")
              or name[0] == "a"]
    writes = [("scratch", int(n[1:])) if n[0] == "a" else where[n] for n in stored]
    body = []
    for j, n in enumerate(read):
        kind, ref = where[n]
        operand_shape = specs[ref][0] if kind == "slot" else shape
        body.append(f"{n} = in{j}{_index(operand_shape, shape, idx)}")
    body += [f"{name} = {code}  # {op}" for name, code, op in lines]
    here = _index(shape, shape, idx)
    body += [f"out{j}{here} = {n}" for j, n in enumerate(stored)]
    params = [f"in{j}" for j in range(len(read))] + [f"out{j}" for j in range(len(stored))]
    head = f"stage {stage + 1} of {n_stages}, " if n_stages > 1 else ""
    lines_out = [f"def kernel({', '.join(params)}):",
                 f"    # {head}on {xp.dtype(dtype).name}{list(shape)}"]
    indent = "    "
    for d, n in enumerate(shape):
        lines_out.append(f"{indent}for {idx[d]} in range({n}):")
        indent += "    "
    lines_out += [indent + line for line in body]
    return Stage("\n".join(lines_out) + "\n", reads, writes)
def _index(operand_shape, shape, idx):
    """How an operand of operand_shape is read at the index of an element of `shape`: its
    axes aligned on the right, 0 along an axis it is broadcast on."""
    if not operand_shape:
        return "[()]"
    offset = len(shape) - len(operand_shape)
    parts = [idx[offset + d] if n == shape[offset + d] else "0"
             for d, n in enumerate(operand_shape)]
    return f"[{', '.join(parts)}]"


class Facts:
    """What the groups of one program are checked against, found once per program (each is
    a pass over all its steps; per group, that was quadratic: 48 s for a 1,000-step LSTM):
    specs {slot: (shape, dtype)}, aliases {slot: the planned buffers it may share memory
    with}, direct {slot: the planned buffer it is written into}."""

    def __init__(self, program):
        self.specs = slot_specs(program)
        self.aliases = _buffer_aliases(program)
        self.direct = {out: plan[1] for (_, _, out), plan in zip(program.steps, program.plan)
                       if plan is not None}


def safe_buffers(program, group, facts):
    """The outputs of `group` that may be written into their planned buffers: not where one
    of its inputs may share memory with that buffer, except the buffer itself in its shape in
    a one-kernel group (a transposed view would be read at other elements than the one
    written, a later kernel would read what an earlier one wrote). facts: Facts(program)."""
    aliases, specs, direct = facts.aliases, facts.specs, facts.direct
    safe = set()
    for k in group.members:
        out, plan = program.steps[k][2], program.plan[k]
        if plan is None or out not in group.outputs:
            continue
        buffer = plan[1]
        # (An input in that very buffer is read before the write, in one kernel only.)
        clashes = [s for s in group.inputs if buffer in aliases.get(s, ())
                   and not (len(group.stages) == 1 and direct.get(s) == buffer
                            and specs[s][0] == group.shape)]
        if not clashes:
            safe.add(out)
    return safe


def _buffer_aliases(program):
    """{slot: the planned buffers its array may share memory with}."""
    aliases = {}
    for (_, ins, out), plan, may_view in zip(program.steps, program.plan, program.may_view):
        if plan is not None:
            aliases[out] = {plan[1]}
        elif may_view:
            aliases[out] = set().union(*[aliases.get(s, set()) for s in ins])
    return aliases

