"""A program as one generated Python function: straight-line code, no per-op dispatch.

The interpreter loop of a Program (`Program._run_steps`) looks up each step's arguments in a
list, checks its buffer plan and the type of its result, then frees slots: about a
microsecond per op, which is most of a batch-1 step. The generated function does the same
work with none of that: each value is a local variable, each op one line — a ufunc called
with `out=` where the op is one ufunc, else its forward (or forward_into its planned buffer)
— and each value dies (`del`) after its last read, as in the loop. `source()` is the code a
learner reads next to the listing: the backward pass as code.

The loop stays the reference: the first replay of a program (which checks every result
against its spec) and anomaly mode (which checks every result for NaN) run it; later replays
run the generated function, which makes the same calls (op by op) or computes the same
numbers (fused: bitwise but for the sign bit of a NaN; each group only on operands numpy would
answer in C order, see `_layout_guard`).

Where numba is installed, runs of elementwise ops are fused (tinygraph.transforms.fuse): one
line calls a kernel that loops once over the elements, its code generated from the ops'
scalar forms and shown after the function; without numba every op keeps its own line.
"""
import itertools
import warnings

from ..backend import xp
from ..ops.elementwise import SPLIT_ELEMENTS
from . import fuse

_SERIAL = itertools.count()


# Replays of the generated function before its fused form runs (so a program's 7th call is
# its first fused one: the 1st runs the checking loop, the 2nd to 6th op by op): numba
# compiles each kernel at its first call (about 0.1 s, 1.5 s for a 30-step LSTM window),
# which pays only for a program run often (a training loop), not one called a few times.
FUSE_AFTER = 5


class Generated:
    """The generated function of one program: `run(values, views)` reads the inputs and
    leaves from `values`, writes the values the program hands out back into it.

    jit: what compiles fused kernels (tinygraph.transforms.fuse): "numba" for numba's njit
    where installed, None for no fusion (op by op, the same computation), or a function
    (tests pass the identity, to run a kernel as plain Python). fuse_after: how many calls
    run the function op by op before the fused one (which computes the same numbers) runs.

    source: the code that runs once fused (the function, then its kernels); namespace: what
    its names refer to (the forwards, ufuncs, kernels); line_steps: {(file name, line
    number): step index (a fused group's first)}, to name the op in an error."""

    def __init__(self, program, kept, jit="numba", fuse_after=FUSE_AFTER):
        self._serial = next(_SERIAL)
        self._program, self._kept, self._jit = program, kept, jit
        self.namespace = {"asarray": xp.asarray, "empty": xp.empty}
        self.line_steps = {}
        self.kernels = {}        # kernel source -> its name; one compiled kernel per source
        self.scratch = {}        # (shape, dtype, n) -> the name of a scratch array
        self._plain_source, self._plain = self._function(
            program, kept, {}, None, f"<tinygraph program {self._serial}>")
        self._fused = None       # (source, function) once made; False: nothing to fuse
        self.replays, self.fuse_after = 0, fuse_after

    @property
    def source(self):
        """The code that runs once fused: the function, then its kernels' code."""
        fused = self._fused_function()
        return self._plain_source if not fused else fused[0]

    def _fused_function(self):
        """(source, function) with the fusible groups as kernels, made when first needed (it
        imports numba and compiles each kernel at its first call); False when none fuse."""
        if self._fused is None:
            jit = fuse.numba_jit() if self._jit == "numba" else self._jit
            groups = fuse.groups(self._program, self._kept) if jit is not None else []
            self._fused = False
            if groups:
                self._facts = fuse.Facts(self._program)
                source, run = self._function(
                    self._program, self._kept, {g.first: g for g in groups}, jit,
                    f"<tinygraph program {self._serial}, fused>")
                for kernel, name in self.kernels.items():
                    source += f"\n\n# {name}: a fused kernel (numba @njit, compiled at its " \
                              "first call)\n" + kernel.replace("def kernel(", f"def {name}(", 1)
                self._fused = (source, run)
        return self._fused

    def run(self, values, views):
        if self.replays >= self.fuse_after and self._fused is not False:
            fused = self._fused_function()
            if fused:
                try:
                    return fused[1](values, views)
                except Exception as e:
                    if not type(e).__module__.startswith("numba"):
                        raise
                    # A kernel numba cannot compile: run op by op from now on (the inputs
                    # and leaves are unchanged, so the plain function computes this call).
                    warnings.warn(f"compiled step: a fused kernel failed to compile, so the "
                                  f"program runs op by op: {type(e).__name__}: {e}",
                                  RuntimeWarning, stacklevel=2)
                    self._fused = False
        self.replays += 1
        return self._plain(values, views)

    def _function(self, program, kept, fused, jit, filename):
        """(source, function) of the program with the groups `fused` ({first step: Group})
        each run by its kernels."""
        lines = ["def run(values, views):"]
        readable = set(range(program.n_inputs)) | {s for s, _ in program.leaves}
        for slot in sorted(readable):
            lines.append(f"    v{slot} = values[{slot}]")
        k = 0
        while k < len(program.steps):
            group = fused.get(k)
            if group is not None:
                lines += self._layout_guard(program, group, filename, len(lines))
                fused_lines = self._group_lines(program, group, jit)
                for n in range(len(fused_lines)):       # an error there names its first op
                    self.line_steps[filename, len(lines) + 1 + n] = k
                lines += ["    " + line for line in fused_lines]
                lines.append("    else:")
                for j in group.members:               # the same steps op by op
                    forward, ins, out = program.steps[j]
                    self.line_steps[filename, len(lines) + 1] = j
                    lines.append(f"        v{out} = "
                                 f"{self._call(j, forward, ins, program.plan[j], program.specs[j])}"
                                 f"  # {forward.__self__.name}")
                written = set(group.outputs) | set(group.inputs)
                dead = [s for j in group.members for s in program.frees[j]
                        if s not in kept and s in written]
                k = group.last + 1
            else:
                forward, ins, out = program.steps[k]
                self.line_steps[filename, len(lines) + 1] = k
                lines.append(f"    v{out} = "
                             f"{self._call(k, forward, ins, program.plan[k], program.specs[k])}"
                             f"  # {forward.__self__.name}")
                dead = [s for s in program.frees[k] if s not in kept]
                k += 1
            if dead:
                lines.append("    del " + ", ".join(f"v{s}" for s in sorted(dead)))
        for slot in sorted(kept):
            lines.append(f"    values[{slot}] = v{slot}")
        source = "\n".join(lines) + "\n"
        exec(compile(source, filename, "exec"), self.namespace)
        return source, self.namespace.pop("run")

    def _layout_guard(self, program, group, filename, at):
        """The `if` that runs a group's kernels only where numpy would write its results in
        C order too: a kernel writes C-ordered arrays, numpy's ops follow their operands'
        stride order (a transposed or Fortran-ordered operand gives a Fortran-ordered
        result), and a later reduction adds in another order on another layout. So where an
        operand of the group's shape has strides that do not fall from axis to axis, the
        group runs op by op, as eager mode does. (A column slice of the gates is C-ordered,
        though not contiguous: its strides fall.)"""
        specs = self._facts.specs
        full = [s for s in group.inputs if len(specs[s][0]) > 1 and specs[s][0] == group.shape]
        self.line_steps[filename, at + 1] = group.first
        self.namespace["c_ordered"] = c_ordered
        test = " and ".join(f"v{s}.strides[0] >= v{s}.strides[1]" if len(group.shape) == 2
                            else f"c_ordered(v{s})" for s in full) or "True"
        return [f"    if {test}:"]

    def _group_lines(self, program, group, jit):
        """The lines of a fused group: its outputs' arrays (planned buffers where that is
        safe, else new ones), then its kernels, with numpy's calls between them on scratch
        arrays the function owns (one set per shape and dtype: groups run one at a time)."""
        in_buffer = fuse.safe_buffers(program, group, self._facts)
        step_of = {program.steps[j][2]: j for j in group.members}
        self.namespace.setdefault(group.dtype.name, group.dtype)
        lines = []
        for s in group.outputs:
            array = f"views[{step_of[s]}]" if s in in_buffer else \
                f"empty({group.shape!r}, {group.dtype.name})"
            lines.append(f"    v{s} = {array}")
        scratch = [self._scratch(group, n) for n in range(group.n_scratch)]

        def array(ref):
            kind, value = ref
            return f"v{value}" if kind == "slot" else scratch[value]

        for k, stage in enumerate(group.stages):
            if k:
                for fn, source, n in group.calls[k - 1]:
                    self.namespace.setdefault(f"np_{fn}", fuse.NUMPY_CALLS[fn])
                    lines.append(f"    np_{fn}({array(source)}, out={scratch[n]})")
            if stage is None:
                continue
            name = self._kernel(stage.source, group.dtype, jit)
            args = ", ".join(array(ref) for ref in stage.reads + stage.writes)
            note = "" if any("fused:" in line for line in lines) else \
                f"  # fused: {' '.join(group.ops)}"
            lines.append(f"    {name}({args}){note}")
        return lines

    def _kernel(self, source, dtype, jit):
        """The name of the compiled kernel of this source (compiled once per program)."""
        name = self.kernels.get(source)
        if name is None:
            name = self.kernels[source] = f"kernel{len(self.kernels)}"
            namespace = fuse.kernel_namespace(dtype)
            exec(compile(source, f"<tinygraph {name}>", "exec"), namespace)
            self.namespace[name] = jit(namespace["kernel"])
        return name

    def _scratch(self, group, n):
        """The name of the n-th scratch array of the group's shape and dtype."""
        key = (group.shape, group.dtype, n)
        name = self.scratch.get(key)
        if name is None:
            name = self.scratch[key] = f"w{len(self.scratch)}"
            self.namespace[name] = xp.empty(group.shape, group.dtype)
        return name

    def _call(self, k, forward, ins, plan, spec):
        """The right-hand side of step k: what it calls, on which values."""
        prim = forward.__self__
        args = ", ".join(f"v{s}" for s in ins)
        ufunc = getattr(prim, "ufunc", None)
        if plan is not None:
            forward_into, _, shape = plan
            if ufunc is not None and _small(shape):
                self.namespace[f"u{k}"] = ufunc
                return f"u{k}({args}, out=views[{k}])"
            self.namespace[f"into{k}"] = forward_into
            return f"into{k}(views[{k}], {args})"
        if ufunc is not None:
            self.namespace[f"u{k}"] = ufunc
            call = f"u{k}({args})"
        else:
            self.namespace[f"f{k}"] = forward
            call = f"f{k}({args})"
        # A 0-d result may come back as a numpy scalar: the loop wraps it, so does this.
        return f"asarray({call})" if spec[0] == () else call

    def step_of(self, traceback):
        """The index of the step whose line raised, from an exception's traceback (None
        when it did not come from this function's lines)."""
        while traceback is not None:
            key = (traceback.tb_frame.f_code.co_filename, traceback.tb_lineno)
            if key in self.line_steps:
                return self.line_steps[key]
            traceback = traceback.tb_next
        return None


def _small(shape):
    """Below the size from which a ufunc is split over the worker threads (its forward_into
    does that split; a direct call would run it on one thread)."""
    size = 1
    for n in shape:
        size *= n
    return size < SPLIT_ELEMENTS


def c_ordered(array):
    """Whether numpy writes an elementwise result of `array` in C order: its strides fall from
    axis to axis (axes of size 1 aside, negative strides not)."""
    last = None
    for n, stride in zip(array.shape, array.strides):
        if n > 1:
            if stride < 0 or last is not None and stride > last:
                return False
            last = stride
    return True
