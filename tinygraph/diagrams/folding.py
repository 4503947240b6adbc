"""Folded time steps: a long unrolled graph drawn as one representative cell.

A recurrent network run over T steps makes T time-step scopes (scopes of kind "time step",
`tinygraph.time_step`: t=1, ..., t=T) that hold the
same ops in the same order. The explorer draws one of them and a time scrubber that makes it
stand for any other: drawn node i of the representative step stands for node i of step k. That
is only right when the steps have the same structure, so `fold_steps` compares them and folds
only a class of identical steps (the first and the last step usually differ: the first reads
the zero state, the last receives the loss's gradient; they stay drawn as they are).

A step also owns the nodes outside its scope that touch it alone (its satellites: the input
x_t, the reshape of h_t before a concat, the slice of the concat's gradient that goes back to
it); they fold with it. Nodes that several steps share (the weights, the Σ of their gradients)
are never folded.
"""

FOLD_MORE_THAN = 8          # fold a class of identical steps only when it has more steps
SATELLITE_ROUNDS = 3        # how far from its scope a node may be and still belong to a step


def fold_steps(nodes, edges, time_steps):
    """The folding of one variant of the explorer's data (its "nodes" and "edges" as plain
    dicts; time_steps: {scope path: k} for the time-step scopes, model.time_step_paths): a list of groups, one per class of more than FOLD_MORE_THAN identical steps, each
    {"parent": the scope path the steps are in, "steps": [k, ...], "scopes": the steps' scope
    paths ("t=3", "layer1/t=3"), "total": the parent's number of steps, "nodes": per step, its
    node ids in matching order}. The first step of a group is its representative. [] when no
    steps fold."""
    owner, steps = _step_members(nodes, time_steps)
    number = time_steps.__getitem__
    neighbours = _neighbours(len(nodes), edges)
    _add_satellites(owner, steps, neighbours)
    local = {key: sorted(ids) for key, ids in steps.items()}
    position = {key: {node: i for i, node in enumerate(ids)} for key, ids in local.items()}
    touching = _edges_by_step(owner, edges)
    classes = {}            # (parent, signature) -> [step keys]
    for key, ids in local.items():
        signature = _signature(key, ids, nodes, touching.get(key, []), owner, position[key],
                               number)
        classes.setdefault((key[:-1], signature), []).append(key)
    groups = []
    for (parent, _), keys in classes.items():
        if len(keys) <= FOLD_MORE_THAN:
            continue
        keys.sort(key=number)
        total = max(number(k) for k in steps if k[:-1] == parent)
        groups.append({"parent": list(parent), "steps": [number(k) for k in keys],
                       "scopes": ["/".join(k) for k in keys], "total": total,
                       "nodes": [local[k] for k in keys]})
    return sorted(groups, key=lambda g: g["parent"])


def _step_members(nodes, time_steps):
    """Each node's time step (the path of its innermost time-step scope, as a tuple), and
    each step's nodes."""
    owner, steps = {}, {}
    for node in nodes:
        scope = tuple(node["scope"])
        depths = [d for d in range(len(scope), 0, -1) if scope[:d] in time_steps]
        if depths:
            key = scope[:depths[0]]
            owner[node["id"]] = key
            steps.setdefault(key, []).append(node["id"])
    return owner, steps


def _neighbours(count, edges):
    around = [set() for _ in range(count)]
    for edge in edges:
        around[edge["tail"]].add(edge["head"])
        around[edge["head"]].add(edge["tail"])
    return around


def _add_satellites(owner, steps, neighbours):
    """Give a step the outside nodes that touch it and no other step, a few edges deep.
    Rounds are synchronous, so a node that several steps reach in the same round (the concat
    of all h_t) is shared, not taken by whichever step came first."""
    shared = set()
    for _ in range(SATELLITE_ROUNDS):
        taken = {}
        for node, around in enumerate(neighbours):
            if node in owner or node in shared:
                continue
            reached = {owner[m] for m in around if m in owner}
            if len(reached) == 1:
                taken[node] = reached.pop()
            elif len(reached) > 1:
                shared.add(node)
        if not taken:
            break
        for node, key in taken.items():
            owner[node] = key
            steps[key].append(node)


def _edges_by_step(owner, edges):
    """Per step, the edges with an end in it, in the model's order."""
    touching = {}
    for edge in edges:
        keys = {owner.get(edge["tail"]), owner.get(edge["head"])} - {None}
        for key in keys:
            touching.setdefault(key, []).append(edge)
    return touching


def _signature(key, ids, nodes, edges, owner, position, number):
    """What must match for two steps to fold: each node's kind, op, shape, dtype and scope
    below the step (in order), and each edge's kind and ends: a node of the step by its
    position, a shared node by its id, a node of another step by how many steps away it is
    (so a step next to an odd one still folds). Labels, names and values may differ (they are what the scrubber shows)."""
    def node_part(i):
        n = nodes[i]
        scope = tuple(n["scope"])
        inside = scope[len(key):] if scope[:len(key)] == key else ("outside",)
        return (n["kind"], n["op"], tuple(n["shape"]), n["dtype"], inside)

    def end(i):
        if i in position:
            return ("here", position[i])
        other = owner.get(i)
        if other is None:
            return ("shared", i)
        offset = number(other) - number(key) if other[:-1] == key[:-1] else other
        return ("step", offset)

    return (tuple(node_part(i) for i in ids),
            tuple((e["kind"], end(e["tail"]), end(e["head"])) for e in edges))
