"""tinygraph.data: batches cover every example once per epoch, aligned arrays stay aligned,
masks match lengths, buckets group lengths, a seeded epoch order is a function of (seed,
epoch) alone, and bad input is one clear error."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygraph as tg
from tinygraph.data import Batches, batches, buckets, epoch_order, length_mask, pad

sizes = st.integers(1, 60)
batch_sizes = st.integers(1, 17)
seeds = st.integers(0, 2**32 - 1)


# --- batches ---------------------------------------------------------------------------------

@settings(max_examples=200)
@given(n=sizes, batch_size=batch_sizes, drop_last=st.booleans(), seed=seeds)
def test_every_example_once_per_epoch(n, batch_size, drop_last, seed):
    got = list(batches(n, batch_size, rng=seed, drop_last=drop_last))
    flat = np.concatenate(got) if got else np.array([], int)
    assert len(set(flat.tolist())) == len(flat)                 # none twice
    if drop_last:
        assert len(flat) == n - n % batch_size
        assert all(len(b) == batch_size for b in got)
    else:
        assert sorted(flat.tolist()) == list(range(n))          # every one
        assert [len(b) for b in got[:-1]] == [batch_size] * (len(got) - 1)


@given(n=sizes, batch_size=batch_sizes, seed=seeds)
def test_aligned_arrays_stay_aligned(n, batch_size, seed):
    x = np.arange(n)
    features = np.stack([x, -x], axis=1).astype(np.float32)
    targets = x * 10
    seen = []
    for f, t in batches((features, targets), batch_size, rng=seed):
        assert f.dtype == np.float32 and f.shape[1:] == (2,)
        np.testing.assert_array_equal(f[:, 0] * 10, t)           # row k of each is example k
        seen += t.tolist()
    assert sorted(seen) == (targets).tolist()


def test_one_array_yields_its_rows_and_no_shuffle_keeps_the_order():
    x = np.arange(7) * 3
    assert [b.tolist() for b in batches(x, 3, shuffle=False)] == [[0, 3, 6], [9, 12, 15], [18]]
    assert [b.tolist() for b in batches(7, 3, shuffle=False, drop_last=True)] == [[0, 1, 2],
                                                                                   [3, 4, 5]]


def test_a_seed_repeats_the_order_and_another_seed_changes_it():
    def order(rng):
        return np.concatenate(list(batches(50, 8, rng=rng))).tolist()
    assert order(4) == order(4) == order(np.random.default_rng(4))
    assert order(4) != order(5)
    rng = np.random.default_rng(0)          # a generator is advanced: each pass a new order
    assert order(rng) != order(rng)


def test_no_rng_draws_from_the_default_generator_as_layers_do():
    tg.manual_seed(11)
    first = [b.tolist() for b in batches(30, 4)] + [g.tolist() for g in buckets(range(30), 4)]
    tg.manual_seed(11)
    again = [b.tolist() for b in batches(30, 4)] + [g.tolist() for g in buckets(range(30), 4)]
    assert first == again
    assert [b.tolist() for b in batches(30, 4)] != first[:8]     # and it advances


# --- seeded epochs (what a resumable training run uses) --------------------------------------

def test_epoch_order_is_the_documented_function_of_seed_and_epoch():
    # Checkpoints of the seq2seq trainer rely on this exact formula: changing it changes the
    # batches a resumed run reads.
    for seed, epoch in ((0, 0), (3, 7)):
        np.testing.assert_array_equal(epoch_order(100, seed, epoch),
                                      np.random.default_rng((seed, epoch)).permutation(100))
    assert epoch_order(100, 3, 0).tolist() != epoch_order(100, 3, 1).tolist()


@given(n=st.integers(1, 80), batch_size=batch_sizes, seed=seeds, epoch=st.integers(0, 50))
def test_batches_by_epoch_and_position_do_not_depend_on_what_was_read_before(
        n, batch_size, seed, epoch):
    fresh = Batches(n, batch_size, seed=seed, drop_last=False)
    used = Batches(n, batch_size, seed=seed, drop_last=False)
    for earlier in range(3):                 # a run that read other epochs first
        used.epoch(earlier)
    position = len(fresh) - 1
    np.testing.assert_array_equal(fresh.indices(epoch, position), used.indices(epoch, position))
    flat = np.concatenate(fresh.epoch(epoch))
    assert sorted(flat.tolist()) == list(range(n))
    order = epoch_order(n, seed, epoch)
    np.testing.assert_array_equal(flat, order)


def test_batches_of_arrays_and_their_count():
    x, y = np.arange(10), np.arange(10) + 100
    full = Batches((x, y), 3, seed=2)
    assert len(full) == 3 and len(Batches(10, 3, drop_last=False)) == 4
    bx, by = full.batch(1, 2)
    np.testing.assert_array_equal(bx + 100, by)
    np.testing.assert_array_equal(bx, epoch_order(10, 2, 1)[6:9])
    with pytest.raises(IndexError, match="batch 3 of an epoch of 3 batches"):
        full.batch(0, 3)


# --- buckets ---------------------------------------------------------------------------------

@settings(max_examples=200)
@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=60), batch_size=batch_sizes,
       seed=seeds)
def test_buckets_partition_the_examples_and_group_lengths(lengths, batch_size, seed):
    lengths = np.array(lengths)
    groups = buckets(lengths, batch_size, rng=seed)
    flat = np.concatenate(groups)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    # Sorted by their shortest, the batches' length ranges do not overlap: no batch could
    # swap an example with another to pad less.
    spans = sorted((lengths[g].min(), lengths[g].max()) for g in groups)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
    assert sum(len(g) < batch_size for g in groups) <= 1


def test_buckets_pad_less_than_random_batches_and_are_shuffled_between_epochs():
    lengths = np.random.default_rng(0).integers(1, 40, size=512)

    def padding(groups):
        return sum(lengths[g].max() * len(g) - lengths[g].sum() for g in groups)
    bucketed = buckets(lengths, 32, rng=1)
    random = list(batches(512, 32, rng=1))
    assert padding(bucketed) < padding(random) / 10
    first_batches = [buckets(lengths, 32, rng=seed)[0].tolist() for seed in range(4)]
    assert len({tuple(b) for b in first_batches}) == 4          # the batch order is shuffled
    ordered = buckets(lengths, 32, shuffle=False)
    assert [lengths[g].max() for g in ordered] == sorted(lengths[g].max() for g in ordered)


def test_batches_with_lengths_bucket_each_epoch_by_seed():
    lengths = np.arange(20) % 7
    by_length = Batches(20, 4, seed=5, lengths=lengths)
    assert len(by_length) == 5
    for epoch in (0, 1):
        expected = buckets(lengths, 4, rng=(5, epoch), drop_last=True)
        assert [g.tolist() for g in by_length.epoch(epoch)] == [g.tolist() for g in expected]
    assert by_length.indices(0, 0).tolist() != by_length.indices(1, 0).tolist()


# --- padding ---------------------------------------------------------------------------------

@settings(max_examples=200)
@given(sequences=st.lists(st.lists(st.integers(1, 99), max_size=12), min_size=1, max_size=8),
       side=st.sampled_from(["right", "left"]), value=st.integers(-5, 0))
def test_pad_masks_match_lengths_and_keep_the_values(sequences, side, value):
    padded, mask, lengths = pad(sequences, value=value, side=side, return_lengths=True)
    width = max(map(len, sequences))
    assert padded.shape == mask.shape == (len(sequences), width) and mask.dtype == bool
    assert lengths.tolist() == [len(s) for s in sequences]
    assert mask.sum(axis=1).tolist() == lengths.tolist()
    for row, s in enumerate(sequences):
        assert padded[row][mask[row]].tolist() == s              # in order, on the right side
        assert (padded[row][~mask[row]] == value).all()
        real = np.flatnonzero(mask[row])
        if len(s):
            assert real.tolist() == (list(range(len(s))) if side == "right"
                                     else list(range(width - len(s), width)))


def test_pad_sequences_of_vectors_to_a_width_with_a_dtype():
    a, b = np.ones((3, 2)), np.full((1, 2), 7.0)
    padded, mask = pad([a, b], value=-1, width=4, dtype=np.float32)
    assert padded.shape == (2, 4, 2) and padded.dtype == np.float32
    assert padded[1].tolist() == [[7, 7], [-1, -1], [-1, -1], [-1, -1]]
    assert mask.tolist() == [[True] * 3 + [False], [True] + [False] * 3]
    assert pad([[1, 2], []])[0].dtype.kind == "i"       # an empty sequence keeps ints ints


def test_length_mask():
    assert length_mask([2, 0, 3]).tolist() == [[True, True, False], [False] * 3, [True] * 3]
    assert length_mask([1], 3, side="left").tolist() == [[False, False, True]]


# --- bad input -------------------------------------------------------------------------------

BAD = [
    (lambda: list(batches(10, 0)), "batch_size must be an integer of at least 1, got 0"),
    (lambda: list(batches(10, -2)), "got -2"),
    (lambda: list(batches(10, 2.5)), "got 2.5"),
    (lambda: list(batches(10, True)), "got True"),
    (lambda: list(batches(0, 4)), "nothing to batch: 0 examples"),
    (lambda: list(batches([], 4)), "batches of no arrays"),
    (lambda: list(batches(np.zeros(0), 4)), "nothing to batch"),
    (lambda: list(batches((np.zeros(5), np.zeros(4)), 2)),
     "same number of examples \\(first dimension\\), got 5, 4"),
    (lambda: list(batches((np.zeros(5), np.float64(1)), 2)), "array 1 is a scalar"),
    (lambda: list(batches(3.0, 2)), "needs a count or arrays"),
    (lambda: Batches(5, 8), "5 examples are fewer than one batch of 8"),
    (lambda: Batches(5, 2, lengths=[1, 2]), "lengths has shape \\(2,\\), expected one per"),
    (lambda: buckets([], 2), "1-d array of lengths"),
    (lambda: buckets([1, -1], 2), "lengths must be integers >= 0"),
    (lambda: buckets([1.5, 2], 2), "lengths must be integers"),
    (lambda: pad([]), "at least one sequence"),
    (lambda: pad("abc"), "a list of sequences"),
    (lambda: pad([[1, 2], 3]), "sequence 1 is a scalar"),
    (lambda: pad([np.zeros((2, 3)), np.zeros((2, 4))]), "only the lengths may differ"),
    (lambda: pad([[1, 2, 3], [1]], width=2), "sequence 0 has length 3, longer than width 2"),
    (lambda: pad([[1]], side="middle"), "side must be 'right' or 'left'"),
]


@pytest.mark.parametrize("call, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_pad_gives_torchs_pad_sequence_and_a_masked_loss_equals_torchs(torch):
    """pad against torch.nn.utils.rnn.pad_sequence (batch_first), and the masked mean loss a
    script writes with the mask against PyTorch's on the same numbers (float64 gradients)."""
    rng = np.random.default_rng(3)
    sequences = [rng.standard_normal((n, 2)) for n in (3, 1, 4, 2)]
    padded, mask = pad(sequences, value=0.0)
    theirs = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(s) for s in sequences],
                                             batch_first=True, padding_value=0.0)
    np.testing.assert_array_equal(padded, theirs.numpy())
    w = rng.standard_normal(2)
    ours_w, their_w = tg.Parameter(w.copy()), torch.tensor(w, requires_grad=True)
    ours = ((tg.tensor(padded) @ ours_w) ** 2 * mask).sum() / mask.sum()
    their_mask = torch.as_tensor(mask)
    reference = ((theirs @ their_w) ** 2 * their_mask).sum() / their_mask.sum()
    ours.backward()
    reference.backward()
    assert ours.item() == pytest.approx(reference.item(), rel=1e-14)
    np.testing.assert_allclose(ours_w.grad.data, their_w.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("sequences, value, dtype", [([[1, 2], [3]], 0.5, None),
                                                     ([[1, 2], [3]], np.nan, None),
                                                     ([[1, 2], [3]], 300, np.uint8)])
def test_a_padding_value_the_dtype_cannot_hold_is_refused_not_rounded(sequences, value, dtype):
    with pytest.raises(ValueError, match="cannot be held exactly"):
        pad(sequences, value=value, dtype=dtype)


def test_nan_padding_of_floats_and_ragged_batches_say_what_to_do():
    padded, mask = pad([[1.5, 2.0], [3.0]], value=np.nan)
    assert np.isnan(padded[1, 1]) and not mask[1, 1]
    with pytest.raises(ValueError, match=r"batch their indices, batches\(len\(sequences\)"):
        list(batches(([[1, 2, 3], [1]], np.arange(2)), 1))


def test_a_dtype_that_would_change_the_values_and_lengths_beyond_the_width_are_refused():
    with pytest.raises(ValueError, match="sequence 0 .* cannot be held exactly in int64"):
        pad([[1.7, 2.2], [3.9]], dtype=np.int64)
    np.testing.assert_array_equal(pad([[1.0, 2.0], [3.0]], dtype=np.int64)[0], [[1, 2], [3, 0]])
    with pytest.raises(ValueError, match="lengths must be between 0 and the width 2"):
        length_mask([3, 5], width=2)
