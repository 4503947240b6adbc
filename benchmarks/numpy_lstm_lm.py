"""The "no framework" reference: a word-level LSTM language model with its backward pass
derived by hand in numpy (the book's equations, written for speed: one input projection per
sequence, weight gradients once per sequence, no per-step weight-sized buffers, an indexing
cross-entropy backward). Used by benchmarks/lm_step.py; not part of the package."""
import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class NumpyLSTMLM:
    def __init__(self, vocab, embed, hidden, layers=1, dropout=0.0, tied=False, seed=0,
                 dtype=np.float32):
        rng = np.random.default_rng(seed)
        f = lambda *shape, scale: (rng.standard_normal(shape) * scale).astype(dtype)
        self.dtype, self.dropout, self.tied, self.rng = dtype, dropout, tied, rng
        self.E = f(vocab, embed, scale=0.01)
        self.layers = []
        for k in range(layers):
            d = embed if k == 0 else hidden
            self.layers.append({"Wx": f(d, 4 * hidden, scale=1 / np.sqrt(d)),
                                "Wh": f(hidden, 4 * hidden, scale=1 / np.sqrt(hidden)),
                                "b": np.zeros(4 * hidden, dtype)})
        self.W = None if tied else f(hidden, vocab, scale=1 / np.sqrt(hidden))
        self.bo = np.zeros(vocab, dtype)
        self.state = [None] * layers

    def params(self):
        ps = [self.E] + [l[k] for l in self.layers for k in ("Wx", "Wh", "b")]
        return ps + ([] if self.tied else [self.W]) + [self.bo]

    def _mask(self, shape):
        if not self.dropout:
            return None
        return (self.rng.random(shape) >= self.dropout).astype(self.dtype) / self.dtype(1 - self.dropout)

    def step(self, ids, targets, lr=20.0, clip=0.25):
        N, T = ids.shape
        dt = self.dtype
        caches = []
        x = self.E[ids]                                            # (N, T, D)
        m_in = self._mask(x.shape)
        if m_in is not None:
            x = x * m_in
        for k, layer in enumerate(self.layers):
            if k > 0 and self.dropout:
                mk = self._mask(x.shape)
                x = x * mk
            else:
                mk = None
            H = layer["Wh"].shape[0]
            h, c = self.state[k] if self.state[k] is not None else (
                np.zeros((N, H), dt), np.zeros((N, H), dt))
            xw = (x.reshape(N * T, -1) @ layer["Wx"]).reshape(N, T, 4 * H) + layer["b"]
            hs = np.empty((N, T, H), dt)
            gates = np.empty((N, T, 4 * H), dt)
            cs = np.empty((N, T + 1, H), dt)
            hprev = np.empty((N, T, H), dt)
            cs[:, 0] = c
            for t in range(T):
                hprev[:, t] = h
                A = xw[:, t] + h @ layer["Wh"]
                g4 = gates[:, t]
                g4[:, :H] = sigmoid(A[:, :H])
                g4[:, H:2 * H] = np.tanh(A[:, H:2 * H])
                g4[:, 2 * H:] = sigmoid(A[:, 2 * H:])
                c = g4[:, :H] * c + g4[:, H:2 * H] * g4[:, 2 * H:3 * H]
                h = g4[:, 3 * H:] * np.tanh(c)
                cs[:, t + 1] = c
                hs[:, t] = h
            self.state[k] = (h, c)
            caches.append((x, mk, gates, cs, hprev))
            x = hs
        m_out = self._mask(x.shape)
        if m_out is not None:
            x = x * m_out
        flat = x.reshape(N * T, -1)
        W = self.E.T if self.tied else self.W
        logits = flat @ W + self.bo
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)               # softmax, in place
        rows, cols = np.arange(N * T), targets.reshape(-1)
        loss = -np.log(logits[rows, cols] + 1e-12).mean()

        # backward
        dlogits = logits
        dlogits[rows, cols] -= 1
        dlogits /= dt(N * T)
        grads = {}
        dW = flat.T @ dlogits
        grads["bo"] = dlogits.sum(axis=0)
        dx = (dlogits @ W.T).reshape(N, T, -1)
        if m_out is not None:
            dx *= m_out
        for k in reversed(range(len(self.layers))):
            layer = self.layers[k]
            x_in, mk, gates, cs, hprev = caches[k]
            H = layer["Wh"].shape[0]
            dA = np.empty_like(gates)
            dh = np.zeros((N, H), dt)
            dc = np.zeros((N, H), dt)
            WhT = layer["Wh"].T
            for t in reversed(range(T)):
                g4 = gates[:, t]
                f, g, i, o = g4[:, :H], g4[:, H:2 * H], g4[:, 2 * H:3 * H], g4[:, 3 * H:]
                tanh_c = np.tanh(cs[:, t + 1])
                dht = dx[:, t] + dh
                ds = dc + dht * o * (1 - tanh_c ** 2)
                d = dA[:, t]
                d[:, :H] = ds * cs[:, t] * f * (1 - f)
                d[:, H:2 * H] = ds * i * (1 - g ** 2)
                d[:, 2 * H:3 * H] = ds * g * i * (1 - i)
                d[:, 3 * H:] = dht * tanh_c * o * (1 - o)
                dc = ds * f
                dh = d @ WhT
            dA2 = dA.reshape(N * T, -1)
            grads[f"Wh{k}"] = hprev.reshape(N * T, -1).T @ dA2
            grads[f"Wx{k}"] = x_in.reshape(N * T, -1).T @ dA2
            grads[f"b{k}"] = dA2.sum(axis=0)
            dx = (dA2 @ layer["Wx"].T).reshape(N, T, -1)
            if mk is not None:
                dx *= mk
        if m_in is not None:
            dx *= m_in
        dE = np.zeros_like(self.E)
        np.add.at(dE, ids.reshape(-1), dx.reshape(N * T, -1))
        if self.tied:
            dE += dW.T
        else:
            grads["W"] = dW
        grads["E"] = dE

        # clip and update
        total = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
        scale = dt(min(1.0, clip / (total + 1e-6)) * lr)
        self.E -= scale * grads["E"]
        for k, layer in enumerate(self.layers):
            for name in ("Wx", "Wh", "b"):
                layer[name] -= scale * grads[f"{name}{k}"]
        if not self.tied:
            self.W -= scale * grads["W"]
        self.bo -= scale * grads["bo"]
        return loss
