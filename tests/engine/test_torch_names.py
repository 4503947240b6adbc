"""A PyTorch user's words meet an error that names tinygraph's: dim= and keepdim=, torch's
function and method names, a torch tensor as an operand, transpose of two axes. And the small
method forms a PyTorch script uses (abs, sqrt, var, std, tolist, requires_grad_)."""
import numpy as np
import pytest

import tinygraph as tg

X = tg.tensor(np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("call, message", [
    (lambda: X.sum(dim=1), "sum: dim= is PyTorch's name; tinygraph uses numpy's, axis="),
    (lambda: tg.mean(X, 1, keepdim=True), "mean: keepdim= is PyTorch's name.*keepdims="),
    (lambda: X.max(dim=1), "max: dim= .*axis="),
    (lambda: tg.softmax(X, dim=1), "softmax: dim= .*axis="),
    (lambda: tg.stack([X, X], dim=0), "stack: dim= .*axis="),
    (lambda: X.var(dim=0), "var: dim= .*axis="),
])
def test_torch_keywords_are_refused_with_numpys_names(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize("name, ours", [("clamp", "x.clip"), ("view", "x.reshape"),
                                        ("unsqueeze", r"x\[:, None\]"), ("long", "astype")])
def test_torch_method_names_say_tinygraphs(name, ours):
    with pytest.raises(AttributeError, match=f"PyTorch's x.{name}.* is .*{ours}"):
        getattr(X, name)
    assert not hasattr(X, "no_such_thing") and getattr(X, "cuda", None) is None


@pytest.mark.parametrize("name, ours", [("cat", "tg.concat"), ("clamp", "tg.clip")])
def test_torch_function_names_say_tinygraphs(name, ours):
    with pytest.raises(AttributeError, match=f"torch.{name} is {ours}"):
        getattr(tg, name)


def test_a_torch_tensor_operand_says_to_pass_its_numpy_array(torch):
    with pytest.raises(TypeError, match=r"torch.Tensor is not a tinygraph Tensor.*"
                                        r"t.detach\(\).numpy\(\)"):
        X * torch.ones(3)


def test_transpose_of_two_axes_of_a_3d_tensor_says_how_torch_differs():
    with pytest.raises(ValueError, match=r"swaps two axes, here give them all, e.g. \(1, 0, 2\)"):
        tg.tensor(np.ones((2, 3, 4))).transpose(0, 1)


def test_method_forms_match_the_functions(torch):
    t = torch.as_tensor(X.data - 2)
    x = X - 2
    np.testing.assert_array_equal(x.abs().data, t.abs().numpy())
    np.testing.assert_allclose(X.sqrt().data, torch.as_tensor(X.data).sqrt().numpy(),
                               rtol=1e-15)
    np.testing.assert_allclose(x.var(1).data, t.var(1).numpy(), rtol=1e-15)
    np.testing.assert_allclose(x.std(0, correction=0).data, t.std(0, correction=0).numpy(),
                               rtol=1e-15)
    assert x.tolist() == t.tolist()


def test_requires_grad_switches_a_leaf_and_refuses_a_computed_tensor():
    p = tg.Parameter(np.ones(2))
    assert p.requires_grad_(False) is p and not p.requires_grad
    assert p.requires_grad_().requires_grad
    with pytest.raises(ValueError, match="requires_grad_: .* was computed by mul"):
        (p * 2).requires_grad_()


def test_torch_style_namespaces_are_there():
    assert tg.nn.Linear and tg.optim.AdamW and tg.data.pad
