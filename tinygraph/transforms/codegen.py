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
run the generated function, which computes the same arrays with the same calls.
"""
import itertools

from ..backend import xp
from ..ops.elementwise import SPLIT_ELEMENTS

_SERIAL = itertools.count()


class Generated:
    """The generated function of one program: `run(values, views)` reads the inputs and
    leaves from `values`, writes the values the program hands out back into it.

    source: the code; namespace: what its names refer to (the forwards, ufuncs, shapes);
    line_steps: {line number: step index}, to name the op in an error."""

    def __init__(self, program, kept):
        self.filename = f"<tinygraph program {next(_SERIAL)}>"
        self.namespace = {"asarray": xp.asarray}
        self.line_steps = {}
        lines = ["def run(values, views):"]
        readable = set(range(program.n_inputs)) | {s for s, _ in program.leaves}
        for slot in sorted(readable):
            lines.append(f"    v{slot} = values[{slot}]")
        for k, ((forward, ins, out), plan, frees) in enumerate(
                zip(program.steps, program.plan, program.frees)):
            self.line_steps[len(lines) + 1] = k
            lines.append(f"    v{out} = {self._call(k, forward, ins, plan, program.specs[k])}"
                         f"  # {forward.__self__.name}")
            dead = [s for s in frees if s not in kept]
            if dead:
                lines.append("    del " + ", ".join(f"v{s}" for s in sorted(dead)))
        for slot in sorted(kept):
            lines.append(f"    values[{slot}] = v{slot}")
        self.source = "\n".join(lines) + "\n"
        code = compile(self.source, self.filename, "exec")
        exec(code, self.namespace)
        self.run = self.namespace["run"]

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
            if traceback.tb_frame.f_code.co_filename == self.filename:
                return self.line_steps.get(traceback.tb_lineno)
            traceback = traceback.tb_next
        return None


def _small(shape):
    """Below the size from which a ufunc is split over the worker threads (its forward_into
    does that split; a direct call would run it on one thread)."""
    size = 1
    for n in shape:
        size *= n
    return size < SPLIT_ELEMENTS
