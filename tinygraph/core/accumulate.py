"""The gradient accumulator: how the backward pass sums the contributions of a tensor's uses.

A tensor used k times gets k gradient contributions. How they are summed is the one place
where cheaper evaluation orders live, written once for every path:

- joined: terms made by a primitive with a `join` rule are replaced by a cheaper equal form
  before they are summed. A weight used once per time step gets T products a_t^T g_t, joined
  into one matmul [a_1..a_T]^T [g_1..g_T]; slice gradients that tile a buffer become one
  concat. The fast backward pass and compiled traces join; a backward pass recorded for
  reading (create_graph=True) keeps each use's term, so diagrams can name it.
- in place (fast pass only): dense terms are added into one buffer the accumulator owns, and
  scatter terms (slice and index gradients, which the fast pass's interpreter, `LazyTerms`,
  leaves unevaluated) are added into it by their primitive's `add_into`, with no
  zero-filled buffer of their own.
- recorded: the sum is explicit `add` nodes with role "accumulate", whose `grad_sources`
  name the uses the summands came from.
"""
from .interpreter import Interpreter, interpreter
from .primitive import evaluate, evaluated, run_forward, shaped
from .state import recording_backward
from .tensor import Tensor, describe


class LazyTerms(Interpreter):
    """The fast backward pass's interpreter: a `sum_term` primitive's result (a slice or an
    index gradient) is left unevaluated, a lazy term for the accumulator to add into its
    buffer; any other op evaluates the lazy terms it reads first. The rest is the enclosing
    interpreter's (`inner`: None, the core's own evaluation, or e.g. detect_anomaly's)."""

    def __init__(self, inner):
        self.inner = inner
        self.check_result = getattr(inner, "check_result", None)

    def apply(self, prim, inputs, state):
        if prim.sum_term:
            out = shaped(prim, inputs, state)
            if state.running is not None:          # named if its evaluation fails
                out._node.forward_node = state.running.vjp_of
            return out
        arrays = [t._data if t._data is not None else evaluate(t) for t in inputs]
        if self.inner is not None:
            return self.inner.apply(prim, inputs, state)
        return evaluated(prim, inputs, arrays, run_forward(prim, arrays, inputs), state)

    def run(self, prim, arrays, inputs, where=None):
        return run_forward(prim, arrays, inputs) if self.inner is None \
            else self.inner.run(prim, arrays, inputs, where)

    def saved(self, inputs, output):
        return None if self.inner is None else self.inner.saved(inputs, output)


class Accumulator:
    """Pending gradient contributions per tensor: `add` them as vjps return them, `pop` the
    total when the tensor's own vjp is due (or at the end, for the wanted inputs)."""

    def __init__(self, record, join):
        self.record = record       # sums become add nodes (create_graph, compiled traces)
        self.join = join           # apply the primitives' join rules
        self.entries = {}          # id(tensor) -> _Entry, or the term itself while it is a
                                   # single dense term on the fast pass
        self.lazy_seen = set()     # ids of the lazy terms pending in some entry (alive: the
                                   # entry holds them, so no id is reused while listed)

    def add(self, tensor, contribution, use):
        key = id(tensor)
        entry = self.entries.get(key)
        if contribution._data is not None and not self.record:
            # The fast pass's common case, a dense term: the first is kept as it is (an
            # _Entry is made only when a second term comes: most tensors get one).
            if entry is None:
                self.entries[key] = contribution
                return
            if type(entry) is not _Entry:
                entry = self.entries[key] = _Entry(entry)
            _add_dense(tensor, entry, contribution)
            return
        if entry is None:
            entry = self.entries[key] = _Entry()
        elif type(entry) is not _Entry:
            entry = self.entries[key] = _Entry(entry)
        if contribution._data is None and not self.record:
            if id(contribution) in self.lazy_seen:
                # One lazy term handed to two tensors (a vjp may return the same term for
                # both inputs): evaluated now, so neither sum adds into the other's array.
                evaluate(contribution)
            else:
                self.lazy_seen.add(id(contribution))
        if self.record and not self.join:
            # Summed as they come, so each add node names the two uses it joins.
            if entry.total is None:
                entry.total, entry.use = contribution, use
            else:
                entry.total = _recorded_sum(tensor, entry.total, entry.use, contribution, use)
                entry.use = None
        elif self.record or contribution._data is None:
            entry.terms.append((contribution, use))      # joined and summed at pop
        else:
            _add_dense(tensor, entry, contribution)

    def pop(self, tensor):
        """The summed gradient of `tensor`, or None if it got no contribution."""
        entry = self.entries.pop(id(tensor), None)
        if entry is None or type(entry) is not _Entry:
            return entry            # no contribution, or a single dense one
        return self._total(tensor, entry)

    def pending(self):
        """ids of the tensors with contributions not popped yet."""
        return list(self.entries)

    def _total(self, tensor, entry):
        if (self.record and not self.join) or not entry.terms:
            return entry.total
        terms = [t for t, _ in entry.terms]
        self.lazy_seen.difference_update(id(t) for t in terms)
        if self.join and self.record:
            with recording_backward(None, "accumulate"):    # the joins are backward nodes
                terms, _ = join_terms(terms)
            for t in terms:
                if t._node is not None and t._node.role == "accumulate":
                    t._node.grad_of = tensor
        elif self.join:
            terms, _ = join_terms(terms)
        if self.record:
            uses = {id(t): use for t, use in entry.terms}
            total, use = terms[0], uses.get(id(terms[0]))
            for t in terms[1:]:
                total, use = _recorded_sum(tensor, total, use, t, uses.get(id(t))), None
            return total
        # Fast pass: the dense terms are summed already; the lazy ones go in now (a join made
        # here runs between vjps: its where names the sum).
        for t in terms:
            if t._data is None:
                _add_lazy(tensor, entry, t)
            else:
                _add_dense(tensor, entry, t)
        return entry.total


class _Entry:
    __slots__ = ("total", "use", "owned", "terms")

    def __init__(self, total=None, use=None):
        # total: a single term, or the running sum of the dense terms; owned: its array was
        # allocated here, so it may be added into in place; terms: (term, use) to join first.
        self.total, self.use, self.owned, self.terms = total, use, False, []


def join_terms(terms, accept=None):
    """The terms of a sum with each group made by one primitive class (with a `join`, and
    accepted by `accept(cls)` when given) replaced by that class's join; also the names of
    the joins done. Order: the terms no join touched first, then the joins' results."""
    groups, rest = {}, []
    for t in terms:
        node = t._node
        cls = type(node.prim) if node is not None else None
        if cls is not None and cls.join is not None and (accept is None or accept(cls)):
            groups.setdefault(cls, []).append(t)
        else:
            rest.append(t)
    names = []
    for cls, group in groups.items():
        joined = cls.join(group) if len(group) > 1 else None
        if joined is None:
            rest.extend(group)
        else:
            rest.extend(joined)
            names.append(cls.join_name)
    return rest, names


def _add_dense(tensor, entry, contribution):
    """entry.total += contribution, into an array this module owns (the fast pass)."""
    if entry.total is None:
        entry.total = contribution
        return
    interp = interpreter()
    check = interp.check_result
    with interp.quiet():
        if entry.owned:
            entry.total._data += contribution._data
        else:
            entry.total, entry.owned = Tensor(entry.total.data + contribution.data), True
    if check is not None:
        _check_sum(check, tensor, entry.total.data, contribution.data)


def _add_lazy(tensor, entry, term):
    """entry.total += term, where term is lazy: a scatter adds itself into the buffer (no
    zero-filled array of its own); anything else is evaluated and added."""
    prim = term._node.prim
    if entry.total is None or prim.add_into is None:
        value = Tensor(evaluate(term, where=f"in the backward pass, summing the gradients "
                                            f"of {describe(tensor)}"))
        if entry.total is None:
            entry.total, entry.owned = value, value.data.base is None
        else:
            _add_dense(tensor, entry, value)
        return
    if not entry.owned:
        entry.total, entry.owned = Tensor(entry.total.data.copy()), True
    arrays = [evaluate(t) for t in term._node.inputs]
    interp = interpreter()
    check = interp.check_result
    with interp.quiet():
        prim.add_into(entry.total.data, *arrays)
    if check is not None:
        _check_sum(check, tensor, entry.total.data, arrays[0])


def _check_sum(check, tensor, total, term):
    check("add", total, [term], where=f"summing the gradients of {describe(tensor)}")


def _recorded_sum(tensor, total, total_use, contribution, use):
    """total + contribution as an add node of role "accumulate" (recording); the uses the
    two came from are kept on the node."""
    with recording_backward(None, "accumulate"):
        total = total + contribution
    if total._node is not None:
        total._node.grad_sources = (total_use, use)
        total._node.grad_of = tensor
        total._node.scope = tensor._node.scope if tensor._node is not None else ()
    return total
