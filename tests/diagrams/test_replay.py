"""The explorer's replay data (tinygraph/diagrams/replay.py): frames from the generated graph to
the simplified one, one logged rewrite at a time, decoded here as the page decodes them."""
import re

import pytest

import tinygraph as tg
from tinygraph.diagrams import replay as replay_module
from tinygraph.examples import EXAMPLES, lstm_unrolled


def patch(before, changes):
    after = list(before)
    for start, end, ids in reversed(changes):
        after[start:end] = ids
    return after


def frames(data):
    """Each frame as (nodes, edges): the nodes as the variants' node dicts (or the written-out
    record), the edges as (tail, head, kind, use) by position, as rewrites.js makes them."""
    r = data["replay"]
    nodes, edges = [r["frames"][0]["nodes"]], [r["frames"][0]["edges"]]
    for f in r["frames"][1:]:
        nodes.append(patch(nodes[-1], f["nodes"]))
        edges.append(patch(edges[-1], f["edges"]))
    out = []
    for records, edge_ids in zip(nodes, edges):
        at = {rec: k for k, rec in enumerate(records)}
        resolved = [resolve(data, r["records"][rec]) for rec in records]
        drawn = [(at[t], at[h], kind, use) for t, h, kind, use in
                 (r["edges"][e] for e in edge_ids)]
        out.append((resolved, drawn))
    return out


def resolve(data, record):
    for name in ("generated", "simplified"):
        if name in record:
            return data["variants"][name]["nodes"][record[name]]
    return record


def drawn(nodes):
    return [(n["kind"], tuple(n["lines"]), tuple(n["scope"])) for n in nodes]


def variant_edges(variant):
    return [(e["tail"], e["head"], e["kind"], e["use"]) for e in variant["edges"]]


@pytest.fixture(scope="module", params=["lstm_cell", "unrolled3"])
def page_data(request):
    outputs = EXAMPLES["lstm_cell"]() if request.param == "lstm_cell" else \
        lstm_unrolled(steps=3)[1]
    return tg.explore(outputs).data


def test_the_replay_starts_on_the_generated_graph_and_ends_on_the_simplified_one(page_data):
    all_frames = frames(page_data)
    generated, simplified = (page_data["variants"][v] for v in ("generated", "simplified"))
    first, last = all_frames[0], all_frames[-1]
    assert drawn(first[0]) == drawn(generated["nodes"])
    assert first[1] == variant_edges(generated)
    assert drawn(last[0]) == drawn(simplified["nodes"])        # same nodes, labels, count
    assert last[1] == variant_edges(simplified)
    assert page_data["replay"]["ends_simplified"] and page_data["replay"]["starts_generated"]


def test_each_frame_has_the_backward_nodes_the_log_leaves(page_data):
    r = page_data["replay"]
    counts = [f["backward"] for f in r["frames"]]
    assert counts[0] == page_data["variants"]["generated"]["backward_count"]
    assert counts[-1] == page_data["variants"]["simplified"]["backward_count"]
    assert all(a > b for a, b in zip(counts, counts[1:])), counts    # each rewrite removes
    # Each step shows what stands for what it replaced: nodes of the frame after it.
    for (nodes, _), step in zip(frames(page_data)[1:], r["steps"]):
        assert step["after"] and all(0 <= i < len(nodes) for i in step["after"])


def test_each_step_names_its_rules_and_what_it_replaced(page_data):
    r = page_data["replay"]
    generated = page_data["variants"]["generated"]["nodes"]
    entries = [e for step in r["steps"] for e in step["entries"]]
    assert [e["index"] for e in entries] == list(range(len(entries)))
    for entry in entries:
        assert entry["rule"] in r["rules"] and r["rules"][entry["rule"]]
        # "rule: ...", or "rule [t=3]: ..." for a rewrite inside a time step
        assert re.match(re.escape(entry["rule"]) + r"( \[t=\d+\])?: ", entry["text"]), entry
        # The first node named in "rule: op + op -> result" is a node of the generated variant.
        first_op = entry["text"].split(": ", 1)[1].split(" ")[0]
        assert entry["generated"], entry
        assert generated[entry["generated"][0]]["op"] == first_op
    all_frames = frames(page_data)
    for k, step in enumerate(r["steps"]):
        before, after = all_frames[k][0], all_frames[k + 1][0]
        # What a step replaces leaves the drawing; the changes account for the node counts.
        assert step["before"] and set(step["before"]) <= set(step["removed"])
        assert len(after) == len(before) - len(step["removed"]) + len(step["appeared"])


def test_the_lstm_cells_one_rewrite_is_the_textbook_concat():
    data = tg.explore(EXAMPLES["lstm_cell"]()).data
    (step,) = data["replay"]["steps"]
    (entry,) = step["entries"]
    assert entry["text"] == "slice_tiling: add + add + add -> concat"
    generated = data["variants"]["generated"]["nodes"]
    simplified = data["variants"]["simplified"]["nodes"]
    assert [generated[i]["lines"][:2] for i in entry["generated"]] == [["∂L/∂A", "Σ"]]
    (made,) = entry["simplified"]
    assert simplified[made]["op"] == "concat" and simplified[made]["lines"][0] == "∂L/∂A"
    # In the frames: the Σ and the four slice gradients go, the concat comes.
    first, last = frames(data)[0][0], frames(data)[1][0]
    assert [first[i]["lines"][1] for i in step["before"]] == ["Σ"]
    assert sorted(first[i]["op"] for i in step["removed"]) == ["add"] + ["slice_grad"] * 4
    assert [last[i]["op"] for i in step["after"]] == ["concat"]


def test_a_long_log_is_shown_several_rewrites_per_frame(monkeypatch):
    _, loss = lstm_unrolled(steps=3)
    one_by_one = tg.explore(loss).data["replay"]
    log = [e["text"] for s in one_by_one["steps"] for e in s["entries"]]
    assert one_by_one["per_frame"] == 1 and len(one_by_one["frames"]) == len(log) + 1
    monkeypatch.setattr(replay_module, "MAX_FRAMES", 3)
    data = tg.explore(loss).data
    r = data["replay"]
    per_frame = -(-len(log) // 3)
    assert r["per_frame"] == per_frame and len(r["frames"]) == 1 + -(-len(log) // per_frame)
    assert [e["text"] for s in r["steps"] for e in s["entries"]] == log
    assert drawn(frames(data)[-1][0]) == drawn(data["variants"]["simplified"]["nodes"])


def test_no_rewrite_no_replay():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    # Its gradient, ∂L/∂exp ⊙ exp(x), is as simple as it gets: no rule applies.
    assert tg.explore(tg.exp(x)).data["replay"] is None


def test_a_rewrite_inside_a_time_step_names_the_step():
    _, loss = lstm_unrolled(steps=3)
    texts = [e["text"] for step in tg.explore(loss).data["replay"]["steps"]
             for e in step["entries"]]
    tilings = [t for t in texts if t.startswith("slice_tiling")]
    assert sorted(tilings) == [f"slice_tiling [t={k}]: add + add + add -> concat"
                               for k in (1, 2, 3)]
