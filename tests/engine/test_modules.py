"""Modules as a PyTorch user reaches for them: print(model) is PyTorch's tree with the
parameters' shapes and counts, named_modules() lists ("", self) first with dotted names,
model.to(dtype) converts every parameter (a compiled step traces again)."""
import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn


class Classifier(nn.Module):
    def __init__(self):
        self.embed = nn.Embedding(10, 4)
        self.hidden = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.25)
        self.out = nn.Linear(8, 3, bias=False)

    def forward(self, ids):
        return self.out(self.drop(tg.relu(self.hidden(self.embed(ids)))))


EXPECTED = """\
Classifier(
  (embed): Embedding(10, 4)  # W (10, 4): 40
  (hidden): Linear(in_features=4, out_features=8, bias=True)  # W (4, 8), b (8,): 40
  (drop): Dropout(p=0.25)
  (out): Linear(in_features=8, out_features=3, bias=False)  # W (8, 3): 24
)
Total: 104 parameters"""


def test_print_shows_the_tree_with_shapes_and_counts():
    assert repr(Classifier()) == EXPECTED
    assert str(nn.Linear(3, 2)) == \
        "Linear(in_features=3, out_features=2, bias=True)  # W (3, 2), b (2,): 8"


def torch_classifier(torch):
    class TorchClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.hidden = torch.nn.Linear(4, 8)
            self.drop = torch.nn.Dropout(0.25)
            self.out = torch.nn.Linear(8, 3, bias=False)
    return TorchClassifier()


def test_the_tree_is_pytorchs_with_the_counts_added(torch):
    """Without our comments and total (and PyTorch's inplace flag), the text is PyTorch's;
    the total is PyTorch's parameter count."""
    ours, theirs = Classifier(), torch_classifier(torch)
    text = repr(ours)
    total = int(re.search(r"Total: ([\d,]+) parameters", text).group(1).replace(",", ""))
    assert total == sum(p.numel() for p in theirs.parameters())
    bare = re.sub(r"  # .*", "", text.rsplit("\n", 1)[0]).replace("Classifier", "TorchClassifier")
    assert bare == repr(theirs).replace(", inplace=False", "")


def test_named_modules_matches_pytorch(torch):
    ours, theirs = Classifier(), torch_classifier(torch)
    assert [name for name, _ in ours.named_modules()] == \
        [name for name, _ in theirs.named_modules()]
    assert ours.named_modules()[0] == ("", ours)
    assert [name for name, _ in ours.named_children()] == \
        [name for name, _ in theirs.named_children()]


class Tied(nn.Module):
    """A module reached twice and a Parameter held twice (weight tying)."""

    def __init__(self):
        self.a = nn.Linear(3, 3)
        self.blocks = [self.a, nn.Linear(3, 3)]
        self.scale = nn.Parameter(np.ones(3, np.float32))
        self.tied = self.a.W


def test_named_modules_lists_each_module_once_with_dotted_names():
    model = Tied()
    assert [name for name, _ in model.named_modules()] == ["", "a", "blocks.1"]
    assert [name for name, _ in model.named_children()] == ["a", "blocks.0", "blocks.1"]


def test_a_shared_parameter_is_counted_once_and_named():
    text = repr(Tied())
    assert "tied (shared with a.W)" in text
    assert "(blocks.0): Linear(in_features=3, out_features=3, bias=True)  # " \
           "W (shared with a.W), b (shared with a.b): 0" in text
    assert text.endswith(f"Total: {12 + 12 + 3:,} parameters")


def test_to_converts_every_parameter_and_its_gradient():
    tg.manual_seed(0)
    model = Classifier()
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    ids = np.array([[1, 2], [3, 4]])
    tg.sum(model.eval()(ids)).backward()
    assert model.to(np.float64) is model
    for name, p in model.named_parameters():
        assert p.dtype == np.float64 and p.grad.dtype == np.float64, name
        np.testing.assert_array_equal(p.data, before[name].astype(np.float64))
    assert model(ids).dtype == np.float64
    assert model.to("float32") is model and model.hidden.W.dtype == np.float32
    assert model.double().out.W.dtype == np.float64 and model.float().out.W.dtype == np.float32


@pytest.mark.parametrize("bad", [np.int32, "int64", np.complex128, "banana", "cuda", None])
def test_to_a_bad_dtype_is_a_clear_error(bad):
    model = Classifier()
    with pytest.raises(TypeError, match=r"Module.to: expected a floating dtype .* got"):
        model.to(bad)
    assert model.hidden.W.dtype == np.float32        # nothing converted


def test_to_cpu_changes_nothing():
    model = Classifier()
    w = model.hidden.W.data
    assert model.to("cpu") is model and model.hidden.W.data is w


def test_a_compiled_step_traces_again_after_to():
    """A program traced in float32 must not be replayed on float64 parameters (it would
    compute or store in float32): the step traces again and equals eager mode."""
    tg.manual_seed(0)
    model = Classifier().eval()
    ids, labels = np.array([[1, 2, 3], [4, 5, 6]]), np.array([0, 2])
    loss = lambda i, y: tg.cross_entropy(model(i)[:, -1, :], y)
    step = tg.compile(loss, model.parameters())
    step(ids, labels)
    model.to(np.float64).zero_grad()
    compiled = step(ids, labels)
    grads = [p.grad.data.copy() for p in model.parameters()]
    assert step.traces == 2 and compiled.dtype == np.float64
    model.zero_grad()
    eager = tg.eager_step(loss, model.parameters())(ids, labels)
    assert compiled.item() == pytest.approx(eager.item(), rel=1e-14)
    for g, p in zip(grads, model.parameters()):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, p.grad.data, rtol=1e-13)


def test_requires_grad_freezes_and_unfreezes_a_module():
    model = Classifier()
    assert model.hidden.requires_grad_(False) is model.hidden
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == \
        ["hidden.W", "hidden.b"]
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())
