"""A compiled step's program, printed: inputs, one line per instruction with its planned
buffer, outputs; and the buffer plan it shows is sound (no two live values share a buffer)."""
import re

import numpy as np
import pytest

import tinygraph as tg
from lstm.models import LanguageModel

GOLDEN = """\
program: 8 instructions, 3 planned buffers (384 KiB)
inputs
  v0: f32[128,256]  given: input 0
  v1: f32[256,256]  parameter 0 (W)
  v3: f32[256]      parameter 1 (b)
  v8: f32[]         constant 1.0
instructions
  v2: f32[128,256] = matmul v0 v1                  in buf0; last read: v1
  v4: f32[128,256] = add v2 v3                     in buf1; last read: v2 v3
  v5: f32[128,256] = tanh v4                       in buf0 (reuses v2's); last read: v4
  v6: f32[] = sum[axis=(0, 1), keepdims=False] v5
  v7: f32[128,256] = mul v5 v5                     in buf1 (reuses v4's); last read: v5
  v9: f32[128,256] = sub v8 v7                     in buf2; last read: v7 v8
  v10: f32[256] = sum_to[shape=(256,)] v9
  v11: f32[256,256] = matmul_tn v0 v9              last read: v0 v9
outputs
  loss        v6
  grad 0 (W)  v11
  grad 1 (b)  v10"""


def linear_tanh_step():
    """A linear layer, tanh and a sum: big enough (128 KiB per activation) for buffers."""
    W = tg.Parameter(np.zeros((256, 256), np.float32), name="W")
    b = tg.Parameter(np.zeros(256, np.float32), name="b")
    step = tg.compile(lambda x: tg.sum(tg.tanh(tg.matmul(x, W) + b)), [W, b])
    return step, np.ones((128, 256), np.float32)


def section(text, name, until):
    lines = text.splitlines()
    return lines[lines.index(name) + 1:lines.index(until)]


def test_the_listing_of_a_tiny_step_matches_its_golden_text():
    step, x = linear_tanh_step()
    assert str(step.program(x)) == GOLDEN


def test_program_with_inputs_traces_without_computing_and_the_call_reuses_it():
    step, x = linear_tanh_step()
    with pytest.raises(ValueError, match="not called yet"):
        step.program()
    listing = step.program(x)
    assert step.traces == 1 and all(p.grad is None for p in step.params)
    step(x)
    assert step.traces == 1                         # the call replayed the listed program
    assert str(step.program()) == str(listing)      # the latest call's program


def lm_listing(vocab, size, shape):
    model = LanguageModel(vocab, size, size, num_layers=2, dropout=0.5, tie_weights=True,
                          seed=3, dtype=np.float32)
    step = tg.compile(model.loss, model.parameters())
    ids = np.zeros(shape, np.int64)
    listing = step.program(ids, ids)
    return listing, next(iter(step.programs.values()))


def test_every_instruction_of_the_program_appears_once_in_order():
    listing, program = lm_listing(50, 12, (3, 6))
    lines = section(str(listing), "instructions", "outputs")
    assert len(lines) == len(listing.instructions) == len(program.steps) > 100
    made = [int(re.match(r"  v(\d+): ", line).group(1)) for line in lines]
    assert made == [out for _, _, out in program.steps]
    ops = [re.search(r" = (\w+)", line).group(1) for line in lines]
    assert ops == [forward.__self__.name for forward, _, _ in program.steps]
    outputs = section(str(listing) + "\nend", "outputs", "end")
    assert outputs[0].split() == ["loss", f"v{program.loss_slot}"]
    assert len(outputs) == 1 + len(program.grad_slots) + sum(len(c[2]) for c in program.carries)
    assert any(line.lstrip().startswith("carry ") for line in outputs)


def live_until(listing):
    """{value: the last instruction it must survive}: its last read, or that of any value
    that may be a view of it (made by an op with no forward_into), found from the listing."""
    spans = listing.lifetimes()
    end = {v: last for v, (_, last) in spans.items()}
    kept = {v for _, v in listing.outputs if v is not None}
    for v in kept:
        end[v] = len(listing.instructions)
    for ins in reversed(listing.instructions):
        if ins.may_view:
            for a in ins.args:
                end[a] = max(end[a], end[ins.value])
    return {v: (spans[v][0], end[v]) for v in spans}


def tiny_listing():
    step, x = linear_tanh_step()
    return step.program(x)


def lm_with_buffers_listing():
    return lm_listing(300, 128, (8, 40))[0]      # (8*40, 128) float32 activations: buffers


@pytest.mark.parametrize("make", [tiny_listing, lm_with_buffers_listing], ids=["tiny", "lm"])
def test_values_sharing_a_buffer_never_overlap_in_lifetime(make):
    listing = make()
    spans = live_until(listing)
    by_buffer = {}
    for ins in listing.instructions:
        if ins.buffer is not None:
            by_buffer.setdefault(ins.buffer, []).append(ins.value)
    assert any(len(values) > 1 for values in by_buffer.values())     # some buffer is shared
    for values in by_buffer.values():
        for earlier, later in zip(values, values[1:]):
            assert spans[earlier][1] < spans[later][0], (earlier, later)
    reused = [ins for ins in listing.instructions if ins.reuses is not None]
    assert all(by_buffer[ins.buffer][by_buffer[ins.buffer].index(ins.value) - 1] == ins.reuses
               for ins in reused) and reused
