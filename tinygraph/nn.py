"""Modules: containers of Parameters with stable names, and the layers models are built from.

A Module finds its parameters by walking its attributes (in the order they were assigned):
Parameters, sub-Modules, and lists/tuples/dicts of them. Names are dotted paths such as
"layers.0.cell.Wx"; a Parameter reachable twice (weight tying) is listed once, under its first
name, so an optimizer updates it once and the engine sums its gradient from both uses.

`print(model)` shows the module tree as PyTorch prints it, with each module's own parameters
(shapes and counts) and the total; `model.to(dtype)` converts every parameter. Layers given
no `rng` draw from `tinygraph.default_generator()`, which `tinygraph.manual_seed` seeds.
"""
import math

from .backend import xp
from .core.generator import default_generator
from .core.interpreter import interpreter
from .core.tensor import Parameter, Tensor
from . import ops


class Module:
    """Base of layers and models: calling a module runs its `forward`.

    Subclasses assign Parameters, sub-Modules and lists/tuples/dicts of them as attributes;
    `named_parameters` finds them. `training` (True by default) is switched by `train` and
    `eval` for every sub-module, e.g. to turn dropout off.
    """

    _training = True

    @property
    def training(self):
        """True in training mode (dropout on). A compiled step's trace records each read, so
        the program it makes is replayed only while the flags it read are unchanged."""
        interpreter().read_flag(self, self._training)
        return self._training

    @training.setter
    def training(self, mode):
        # Switched inside a traced function: guard the flag as it was when it was called.
        interpreter().read_flag(self, self._training)
        self._training = bool(mode)

    def __setattr__(self, name, value):
        interpreter().assigning(self, name)     # set by a traced function: not guarded
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        interpreter().called(self)        # a compiled step guards what the module holds
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        """The computation of the module; subclasses implement it."""
        raise NotImplementedError

    # --- parameters --------------------------------------------------------------------------
    def named_parameters(self):
        """(dotted name, Parameter) pairs in a stable order, each Parameter once."""
        seen, found = set(), []
        for name, value in self._walk():
            if isinstance(value, Parameter) and id(value) not in seen:
                seen.add(id(value))
                found.append((name, value))
        return found

    def parameters(self):
        """The Parameters of `named_parameters`, without the names."""
        return [p for _, p in self.named_parameters()]

    def modules(self):
        """This module and every sub-module, depth first."""
        return [m for _, m in self._walk() if isinstance(m, Module)]

    def _walk(self):
        """(name, value) for this module, every sub-module and every Parameter, depth first."""
        out, stack = [], [("", self)]
        while stack:
            prefix, value = stack.pop()
            out.append((prefix, value))
            if isinstance(value, Module):
                children = list(vars(value).items())
            elif isinstance(value, (list, tuple)):
                children = [(str(k), v) for k, v in enumerate(value)]
            elif isinstance(value, dict):
                children = [(str(k), v) for k, v in value.items()]
            else:
                continue
            kept = [(f"{prefix}.{k}" if prefix else k, v) for k, v in children
                    if isinstance(v, (Module, Parameter, list, tuple, dict))]
            stack.extend(reversed(kept))
        return out

    def zero_grad(self):
        """Forget the accumulated gradient of every parameter."""
        for p in self.parameters():
            p.grad = None

    # --- modes -------------------------------------------------------------------------------
    def train(self, mode=True):
        """Set `training` on this module and every sub-module; returns the module."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Evaluation mode (`train(False)`): dropout passes its input through."""
        return self.train(False)

    # --- state -------------------------------------------------------------------------------
    def named_modules(self):
        """(dotted name, module) for this module ("") and every sub-module, depth first, each
        module once (under its first name), as PyTorch's `named_modules`."""
        seen, found = set(), []
        for name, m in self._walk():
            if isinstance(m, Module) and id(m) not in seen:
                seen.add(id(m))
                found.append((name, m))
        return found

    def named_children(self):
        """(name, module) for the direct sub-modules (those in lists or dicts named "layers.0",
        as in `named_parameters`), in attribute order."""
        return [(name, v) for name, v in self._direct() if isinstance(v, Module)]

    def children(self):
        """The direct sub-modules of `named_children`, without the names."""
        return [m for _, m in self.named_children()]

    def _direct(self):
        """(name, value) for the sub-modules and Parameters this module holds itself (in
        lists, tuples and dicts too), not those of its sub-modules."""
        out, stack = [], list(reversed(list(vars(self).items())))
        while stack:
            name, value = stack.pop()
            if isinstance(value, (Module, Parameter)):
                out.append((name, value))
            elif isinstance(value, (list, tuple, dict)):
                items = value.items() if isinstance(value, dict) else enumerate(value)
                stack.extend(reversed([(f"{name}.{k}", v) for k, v in items]))
        return out

    # --- printing ----------------------------------------------------------------------------
    def extra_repr(self):
        """The text between the parentheses of this module's line (its settings, as
        PyTorch's extra_repr); subclasses override it."""
        return ""

    def __repr__(self):
        first_names = {id(p): name for name, p in self.named_parameters()}
        lines = _tree_lines(self, "", first_names)
        if len(lines) > 1:               # a tree: the total too (a layer's line has its own)
            count = parameter_count(self)
            lines.append(f"Total: {count:,} parameter{'s' if count != 1 else ''}")
        return "\n".join(lines)

    # --- dtype and freezing ------------------------------------------------------------------
    def to(self, dtype):
        """Convert every parameter (and its gradient) to the floating dtype `dtype`
        (np.float32, np.float64 or their names), in place: the Parameters stay the same
        objects, so optimizers made earlier still hold them (but make optimizers after
        `to`, as in PyTorch: their moment buffers keep the old dtype). "cpu" is accepted and
        changes nothing (tinygraph computes with numpy). Returns the module."""
        if isinstance(dtype, str) and dtype == "cpu":
            return self
        dtype = _float_dtype(dtype)
        for module in self.modules():
            module._to_dtype(dtype)
        for p in self.parameters():
            if p.dtype != dtype:
                p.data = p.data.astype(dtype)        # bumps the version: old graphs refuse
                if p.grad is not None:
                    p.grad = Tensor(p.grad.value().astype(dtype))
        return self

    def float(self):
        """`to(np.float32)`."""
        return self.to(xp.float32)

    def double(self):
        """`to(np.float64)`."""
        return self.to(xp.float64)

    def _to_dtype(self, dtype):
        """Convert what this module holds besides its parameters (e.g. the dtype its zero
        state is made in) to `dtype`; subclasses with such state override it."""

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter: a frozen one is a constant to
        `eager_step` and `compile` and keeps `.grad` None. Returns the module."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def extra_state(self):
        """This module's own state besides its parameters, as {key: array} (copies): e.g. the
        recurrent state a stateful layer carries, or a dropout layer's random generator.
        Subclasses that have such state override this and `load_extra_state`."""
        return {}

    def load_extra_state(self, state):
        """Restore what `extra_state` returned, from {key: array}; a missing key means the
        state is absent (e.g. no carried state yet). Returns the keys it used."""
        return set()

    def extra_states(self):
        """{name: array} of every module's extra state only (no parameters): e.g. to put the
        carried state back after an evaluation pass that reset it."""
        state = {}
        for prefix, module in self.named_modules():
            for key, value in module.extra_state().items():
                state[f"{prefix}.{key}" if prefix else key] = value
        return state

    def load_extra_states(self, state):
        """Restore what `extra_states` returned (modules missing from it have none)."""
        self._load_extra(state)

    def state_dict(self):
        """{name: array} of every parameter and every module's extra state (copies), so a
        checkpoint holds a model whole without knowing its layout."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update(self.extra_states())
        return state

    def load_state_dict(self, state):
        """Load arrays by name. Parameters: any missing, unexpected or mis-shaped entry is a
        ValueError. Extra state: each module takes its own keys; a key no module takes is a
        ValueError too. On an error the module is left as it was."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        for name, p in params.items():
            if name in state:
                array = xp.asarray(state[name])
                if array.shape != p.shape or array.dtype != p.dtype:
                    raise ValueError(f"load_state_dict: {name} is {array.dtype}{array.shape} "
                                     f"in the state but {p.dtype}{p.shape} in the model")
        before = self.extra_states()
        used = set(params) | self._load_extra(state, params)
        unexpected = sorted(set(state) - used)
        if missing or unexpected:
            self._load_extra(before, params)          # put the extra state back
            raise ValueError(f"load_state_dict: missing {missing}, unexpected {unexpected}")
        for name, p in params.items():
            p.data[...] = state[name]
            p.mark_changed()          # graphs that saved the old values refuse to use them

    def _load_extra(self, state, params=()):
        """Give each module its own extra-state keys; returns the (full) keys taken."""
        used = set()
        for prefix, module in self.named_modules():
            head = f"{prefix}." if prefix else ""
            own = {k[len(head):]: v for k, v in state.items()
                   if k.startswith(head) and k not in params}
            used |= {head + k for k in module.load_extra_state(own)}
        return used


def _float_dtype(dtype):
    """numpy's float32 or float64 for `dtype`; a clear error for anything else."""
    try:
        # (numpy reads None as float64: refused here, as PyTorch refuses it)
        resolved = xp.dtype(dtype) if dtype is not None else None
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in ("float32", "float64"):
        raise TypeError(f"Module.to: expected a floating dtype (np.float32, np.float64, "
                        f"'float32' or 'float64'), got {dtype!r}")
    return resolved


def parameter_count(module):
    """The number of numbers in the module's parameters, each shared Parameter once."""
    return sum(p.size for p in module.parameters())


def _tree_lines(module, prefix, first_names):
    """The lines of `print(module)`: PyTorch's layout, `Name(settings)` and one indented
    line per child, with each module's own parameters as a comment (shape, count). A
    Parameter held twice (weight tying) is counted under its first name (the one
    `named_parameters` gives) and named "shared with ..." elsewhere."""
    direct = module._direct()
    shown, total = [], 0
    for name, p in direct:
        if isinstance(p, Parameter):
            first = first_names[id(p)]
            if first != prefix + name:
                shown.append(f"{name} (shared with {first})")
            else:
                shown.append(f"{name} {_shape(p)}")
                total += p.size
    note = f"  # {', '.join(shown)}: {total:,}" if shown else ""
    head, extra = type(module).__name__, module.extra_repr()
    children = [(name, v) for name, v in direct if isinstance(v, Module)]
    if not children:
        return [f"{head}({extra}){note}"]
    lines = [f"{head}({note}"] + ([f"  {extra}"] if extra else [])
    for name, child in children:
        child_lines = _tree_lines(child, f"{prefix}{name}.", first_names)
        lines.append(f"  ({name}): {child_lines[0]}")
        lines += ["  " + line for line in child_lines[1:]]
    lines.append(")")
    return lines


def _shape(p):
    return "(" + ", ".join(map(str, p.shape)) + ("," if len(p.shape) == 1 else "") + ")"


def scaled_normal(rng, shape, scale, dtype):
    """Standard normal * scale (the book's initialisations: randn / sqrt(fan_in), randn / 100)."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


class Linear(Module):
    """y = x @ W + b, with W of shape (in_features, out_features)."""

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=xp.float32,
                 name="linear"):
        rng = rng if rng is not None else default_generator()
        self.in_features, self.out_features = in_features, out_features
        self.W = Parameter(scaled_normal(rng, (in_features, out_features),
                                             1 / math.sqrt(in_features), dtype), name=f"{name}.W")
        self.b = Parameter(xp.zeros(out_features, dtype), name=f"{name}.b") if bias else None

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.b is not None}")

    def forward(self, x):
        """x (..., in_features) -> (..., out_features)."""
        y = x @ self.W
        return y + self.b if self.b is not None else y


class Embedding(Module):
    """Rows of W picked by integer ids: an "index" node, whose gradient scatters back."""

    def __init__(self, num_embeddings, embedding_dim, rng=None, dtype=xp.float32, scale=0.01,
                 name="embed"):
        rng = rng if rng is not None else default_generator()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.W = Parameter(scaled_normal(rng, (num_embeddings, embedding_dim), scale, dtype),
                           name=f"{name}.W")

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def forward(self, ids):
        """Integer ids of any shape (an array, or an integer Tensor) -> their rows,
        shape ids.shape + (embedding_dim,)."""
        # An integer Tensor stays a graph input (a compiled program feeds new ids into it).
        if not isinstance(ids, Tensor):
            ids = Tensor(xp.array(ids), constant=True)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        ids = ops.ids_in_range(ids, self.W.shape[0], "Embedding: id {bad} is outside the "
                               "{size} rows")
        return self.W[ids]


class Dropout(Module):
    """Inverted dropout: in training, x * mask / (1 - p) with a fresh Bernoulli mask.

    A composition (a mul by a mask drawn by a dropout_mask node), so its gradient is derived
    like any other. With an `rng` the masks come from that generator, which the module's
    state (a checkpoint) holds, so a resumed run draws the masks it would have drawn. Without
    one they come from `tinygraph.default_generator()` as each mask is drawn (as PyTorch's
    dropout draws from its default generator): `manual_seed` makes them repeat, and the
    module has no state of its own.
    """

    def __init__(self, p=0.5, rng=None):
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng        # None: the default generator, read at each draw

    def extra_repr(self):
        return f"p={self.p}"

    def extra_state(self):
        """The own generator's position, so a resumed run draws the masks it would have drawn
        (a PCG64 generator, numpy's default); {} without an own generator."""
        return {} if self.rng is None else {"rng": rng_state_array(self.rng)}

    def load_extra_state(self, state):
        if "rng" not in state or self.rng is None:
            return set()
        set_rng_state(self.rng, state["rng"])
        return {"rng"}

    def forward(self, x):
        """x with dropout applied in training mode; x itself in evaluation mode."""
        if not self.training or self.p == 0:
            return x
        return x * ops.dropout_mask(self.p, x.shape, x.dtype, self.rng)


def rng_state_array(rng):
    """A numpy Generator's PCG64 state as 6 uint64 words (checkpoints hold arrays only)."""
    state = rng.bit_generator.state
    if state.get("bit_generator") != "PCG64":
        raise ValueError(f"only PCG64 generators can be saved, got {state.get('bit_generator')}")
    words = []
    for big in (state["state"]["state"], state["state"]["inc"]):
        words += [big >> 64, big & (2**64 - 1)]
    words += [state["has_uint32"], state["uinteger"]]
    return xp.array(words, dtype=xp.uint64)


def set_rng_state(rng, words):
    """Put a Generator back at the state `rng_state_array` saved."""
    words = [int(w) for w in xp.asarray(words, dtype=xp.uint64)]
    if len(words) != 6:
        raise ValueError(f"a generator state has 6 words, got {len(words)}")
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (words[0] << 64) | words[1], "inc": (words[2] << 64) | words[3]},
        "has_uint32": words[4], "uinteger": words[5]}


def mse_loss(prediction, target):
    """Mean squared error over all elements."""
    diff = prediction - target
    return ops.mean(diff * diff)
