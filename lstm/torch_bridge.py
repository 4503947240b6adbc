"""Moving models between tinygraph and PyTorch, weights exactly mapped.

    torch_model = lstm.to_torch(model)      # nn.Embedding, nn.LSTM/GRU/RNN, nn.Linear, ...
    model = lstm.from_torch(torch_model)    # and back: the round trip is bitwise

The mapping, per recurrent layer: tinygraph computes x @ Wx (Wx of shape (D, kH)), PyTorch
W_ih @ x (W_ih of shape (kH, D)), so the weights are transposed; tinygraph's LSTM gates are
ordered f, g, i, o (the book's), PyTorch's i, f, g, o; tinygraph has one LSTM or RNN bias,
PyTorch two (b_ih gets it, b_hh is zero; back, b = b_ih + b_hh). GRUs use PyTorch's order and
both biases already. An affine layer's W (in, out) is PyTorch's weight (out, in) transposed.

For the package's models: LanguageModel (with tied weights), SequenceRegressor,
SequenceClassifier and Seq2seq (peeky, attention). PyTorch is an optional dependency
(`pip install -e '.[torch]'`), imported only when the bridge is used.
"""
import numpy as np

from .cells import GRUCell, LSTMCell, RNNCell
from .models import LanguageModel, SequenceClassifier, SequenceRegressor
from .seq2seq import Seq2seq

CELL_NAMES = {LSTMCell: "lstm", GRUCell: "gru", RNNCell: "rnn"}


def _torch_modules():
    try:
        from . import torch_modules
    except ImportError as e:
        raise ImportError(f"the PyTorch bridge needs torch ({e}); install it with "
                          "pip install -e '.[torch]'") from None
    return torch_modules


# --- what a model is --------------------------------------------------------------------------

def describe(model):
    """(kind, config): the model's kind ("language_model", "regressor", "classifier",
    "seq2seq") and the settings that rebuild it, as plain JSON-ready values."""
    if isinstance(model, LanguageModel):
        return "language_model", dict(model.config)
    if isinstance(model, Seq2seq):
        return "seq2seq", dict(model.config)
    layers = _layers(model.rnn.layers)
    first, cell = model.rnn.layers[0].cell, layers["cell"]
    if isinstance(model, SequenceRegressor):
        return "regressor", dict(input_size=first.input_size, hidden_size=first.hidden_size,
                                 output_size=model.out.W.shape[1], num_layers=layers["count"],
                                 cell=cell)
    if isinstance(model, SequenceClassifier):
        return "classifier", dict(vocab_size=model.embed.W.shape[0],
                                  num_classes=model.out.W.shape[1],
                                  embed_size=model.embed.W.shape[1],
                                  hidden_size=first.hidden_size, num_layers=layers["count"],
                                  cell=cell)
    raise TypeError(f"to_torch: no PyTorch twin for {type(model).__name__}; the bridge knows "
                    "LanguageModel, SequenceRegressor, SequenceClassifier and Seq2seq")


def _layers(layers):
    cells = {type(layer.cell) for layer in layers}
    if len(cells) != 1 or next(iter(cells)) not in CELL_NAMES:
        raise TypeError(f"to_torch: layers of {sorted(c.__name__ for c in cells)}; the bridge "
                        "maps stacks of one cell type (LSTMCell, GRUCell or RNNCell)")
    return {"cell": CELL_NAMES[next(iter(cells))], "count": len(layers)}


# --- tinygraph -> PyTorch ---------------------------------------------------------------------

def to_torch(model):
    """The PyTorch module equivalent to `model` (one of the package's models), its weights
    copied and mapped (see the module), in the model's dtype, in eval or train mode as the
    model is."""
    kind, config = describe(model)
    module = torch_module(kind, config)        # a clear error first, without torch
    import torch
    dtype = next(iter(model.parameters())).dtype
    module = module.double() if dtype == np.float64 else module.float()
    state = {name: torch.from_numpy(np.ascontiguousarray(array))
             for name, array in torch_state_dict(model).items()}
    module.load_state_dict(state, strict=True)
    module.train(model.training)
    return module


def torch_module(kind, config):
    """An untrained PyTorch module of the given kind and config (what `describe` and the
    export command record)."""
    modules = _torch_modules()
    if kind not in modules.KINDS:
        raise ValueError(f"unknown model kind {kind!r}; the bridge knows "
                         f"{', '.join(modules.KINDS)}")
    config = dict(config)
    if kind == "language_model":
        config.pop("seed", None)
    return modules.KINDS[kind](**config)


def torch_state_dict(model):
    """{PyTorch parameter name: numpy array} for `model`, mapped (see the module)."""
    kind, _ = describe(model)
    params = dict(model.named_parameters())
    state = {}
    if kind == "seq2seq":
        state["enc_embed.weight"] = params["enc_embed.W"].data
        state["dec_embed.weight"] = params["dec_embed.W"].data
        state.update(_recurrent_to_torch([model.encoder], "encoder"))
        state.update(_recurrent_to_torch([model.decoder], "decoder"))
        state.update(_linear_to_torch(model.out, "out"))
        return state
    if kind in ("language_model", "classifier"):
        state["embed.weight"] = model.embed.W.data
    state.update(_recurrent_to_torch(model.rnn.layers, "rnn"))
    if kind == "language_model" and model.config["tie_weights"]:
        state["out_b"] = model.out_b.data
    else:
        state.update(_linear_to_torch(model.out, "out"))
    return state


def _linear_to_torch(linear, prefix):
    return {f"{prefix}.weight": linear.W.data.T, f"{prefix}.bias": linear.b.data}


def _recurrent_to_torch(layers, prefix):
    state = {}
    for k, layer in enumerate(layers):
        cell = layer.cell
        state[f"{prefix}.weight_ih_l{k}"] = _gates_to_torch(cell, cell.Wx.data).T
        state[f"{prefix}.weight_hh_l{k}"] = _gates_to_torch(cell, cell.Wh.data).T
        state[f"{prefix}.bias_ih_l{k}"] = _gates_to_torch(cell, cell.b.data)
        state[f"{prefix}.bias_hh_l{k}"] = (cell.bh.data if isinstance(cell, GRUCell)
                                          else np.zeros_like(cell.b.data))
    return state


def _gates_to_torch(cell, w):
    """Columns (last axis) in tinygraph's gate order -> PyTorch's (LSTM: f, g, i, o -> i, f,
    g, o; GRU and RNN: the same)."""
    if not isinstance(cell, LSTMCell):
        return w
    f, g, i, o = np.split(w, 4, axis=-1)
    return np.concatenate([i, f, g, o], axis=-1)


def _gates_from_torch(cell_class, w):
    if cell_class is not LSTMCell:
        return w
    i, f, g, o = np.split(w, 4, axis=-1)
    return np.concatenate([f, g, i, o], axis=-1)


# --- PyTorch -> tinygraph ---------------------------------------------------------------------

def from_torch(module):
    """The tinygraph model equivalent to `module`, a PyTorch twin of one of the package's
    models (made by to_torch or torch_module, trained or not), weights copied and mapped."""
    modules = _torch_modules()
    kinds = {cls: kind for kind, cls in modules.KINDS.items()}
    kind = kinds.get(type(module))
    if kind is None:
        raise TypeError(f"from_torch: {type(module).__name__} is not one of the package's "
                        f"PyTorch twins ({', '.join(c.__name__ for c in kinds)}); build one "
                        "with lstm.torch_bridge.torch_module and load your weights into it")
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    dtype = next(iter(state.values())).dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"from_torch: weights of dtype {dtype}; use float32 or float64")
    config = _config_of(kind, module, state)
    model = _build(kind, config, dtype)
    model.load_state_dict(_from_torch_state(model, kind, state))
    model.train(module.training)
    return model


def _config_of(kind, module, state):
    if kind == "seq2seq":
        V, E = state["enc_embed.weight"].shape
        _check_recurrent(module.encoder, "encoder")
        _check_recurrent(module.decoder, "decoder")
        return dict(vocab_size=V, embed_size=E, hidden_size=module.encoder.hidden_size,
                    peeky=module.peeky, attention=module.attention)
    rnn = module.rnn
    cell = _check_recurrent(rnn, "rnn")
    common = dict(hidden_size=rnn.hidden_size, num_layers=rnn.num_layers, cell=cell)
    if kind == "language_model":
        V, E = state["embed.weight"].shape
        return dict(vocab_size=V, embed_size=E, dropout=module.drop.p,
                    tie_weights=module.tie_weights, **common)
    if kind == "classifier":
        V, E = state["embed.weight"].shape
        return dict(vocab_size=V, num_classes=state["out.weight"].shape[0], embed_size=E,
                    **common)
    return dict(input_size=rnn.input_size, output_size=state["out.weight"].shape[0], **common)


def _check_recurrent(rnn, where):
    """The cell name of a PyTorch recurrent layer the bridge can map, else a TypeError."""
    modules = _torch_modules()
    names = {cls: name for name, cls in modules.RECURRENT.items()}
    name = names.get(type(rnn))
    if name is None:
        raise TypeError(f"from_torch: {where} is a {type(rnn).__name__}; the bridge maps "
                        "nn.LSTM, nn.GRU and nn.RNN")
    unsupported = [what for what, bad in (
        ("bidirectional", rnn.bidirectional), ("proj_size", getattr(rnn, "proj_size", 0)),
        ("batch_first=False", not rnn.batch_first), ("bias=False", not rnn.bias),
        ("relu nonlinearity", getattr(rnn, "nonlinearity", "tanh") != "tanh")) if bad]
    if unsupported:
        raise TypeError(f"from_torch: {where} ({type(rnn).__name__}) uses "
                        f"{', '.join(unsupported)}, which tinygraph's cells do not have")
    return name


def _build(kind, config, dtype):
    config = dict(config)
    if kind == "language_model":
        return LanguageModel(**config, dtype=dtype)
    if kind == "seq2seq":
        return Seq2seq(**config, dtype=dtype)
    layers = config.pop("num_layers")
    model = (SequenceRegressor if kind == "regressor" else SequenceClassifier)(**config,
                                                                              dtype=dtype)
    if layers != len(model.rnn.layers):
        raise TypeError(f"from_torch: a {kind} of {layers} recurrent layers; the package's "
                        f"{kind} has {len(model.rnn.layers)}")
    return model


def _from_torch_state(model, kind, state):
    """tinygraph's state_dict (parameter names) from a PyTorch state dict."""
    ours = {}
    cells = [("encoder", model.encoder.cell, "encoder", 0),
             ("decoder", model.decoder.cell, "decoder", 0)] if kind == "seq2seq" else \
        [(f"rnn.layers.{k}", layer.cell, "rnn", k) for k, layer in enumerate(model.rnn.layers)]
    for name, cell, prefix, k in cells:
        cls = type(cell)
        ours[f"{name}.cell.Wx"] = _gates_from_torch(cls, state[f"{prefix}.weight_ih_l{k}"].T)
        ours[f"{name}.cell.Wh"] = _gates_from_torch(cls, state[f"{prefix}.weight_hh_l{k}"].T)
        b_ih, b_hh = state[f"{prefix}.bias_ih_l{k}"], state[f"{prefix}.bias_hh_l{k}"]
        if cls is GRUCell:
            ours[f"{name}.cell.b"], ours[f"{name}.cell.bh"] = b_ih, b_hh
        else:
            ours[f"{name}.cell.b"] = _gates_from_torch(cls, b_ih + b_hh)
    if kind == "seq2seq":
        ours["enc_embed.W"], ours["dec_embed.W"] = (state["enc_embed.weight"],
                                                    state["dec_embed.weight"])
    elif kind in ("language_model", "classifier"):
        ours["embed.W"] = state["embed.weight"]
    if kind == "language_model" and model.config["tie_weights"]:
        ours["out_b"] = state["out_b"]
    else:
        ours["out.W"], ours["out.b"] = state["out.weight"].T, state["out.bias"]
    names = dict(model.named_parameters())
    missing = sorted(set(names) - set(ours))
    if missing:
        raise TypeError(f"from_torch: no PyTorch weight maps to {', '.join(missing)}")
    return {k: np.ascontiguousarray(v) for k, v in ours.items()}
