"""PyTorch twins of the lstm package's models, built from standard PyTorch layers
(nn.Embedding, nn.LSTM / nn.GRU / nn.RNN, nn.Linear, nn.Dropout). Imported only by the
bridge (lstm.torch_bridge), so that the package itself never needs torch."""
import torch
from torch import nn
from torch.nn import functional as F

RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def recurrent(cell, input_size, hidden_size, num_layers=1, dropout=0.0):
    return RECURRENT[cell](input_size, hidden_size, num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)


class TorchLanguageModel(nn.Module):
    """Embedding -> dropout -> stacked RNN (dropout between layers) -> dropout -> affine
    (tied: the embedding matrix, transposed, and a bias of its own)."""

    def __init__(self, vocab_size, embed_size, hidden_size, num_layers=1, dropout=0.0,
                 tie_weights=False, cell="lstm"):
        super().__init__()
        self.tie_weights = tie_weights
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = recurrent(cell, embed_size, hidden_size, num_layers, dropout)
        self.drop = nn.Dropout(dropout)
        if tie_weights:
            self.out_b = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.out = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        """ids (N, T) -> (logits (N, T, V), final state), from `state` (None: zeros)."""
        hs, state = self.rnn(self.drop(self.embed(ids)), state)
        hs = self.drop(hs)
        logits = F.linear(hs, self.embed.weight, self.out_b) if self.tie_weights \
            else self.out(hs)
        return logits, state


class TorchSequenceRegressor(nn.Module):
    def __init__(self, input_size, hidden_size, output_size, num_layers=1, cell="lstm"):
        super().__init__()
        self.rnn = recurrent(cell, input_size, hidden_size, num_layers)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, xs):
        return self.out(self.rnn(xs)[0])


class TorchSequenceClassifier(nn.Module):
    def __init__(self, vocab_size, num_classes, embed_size, hidden_size, num_layers=1,
                 cell="lstm"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = recurrent(cell, embed_size, hidden_size, num_layers)
        self.out = nn.Linear(hidden_size, num_classes)

    def forward(self, ids):
        return self.out(self.rnn(self.embed(ids))[0][:, -1])


class TorchSeq2seq(nn.Module):
    """The encoder-decoder of lstm.seq2seq: the encoder's final (h, c) starts the decoder;
    peeky feeds the encoder's h beside every decoder input and output; attention weighs the
    encoder states by a softmax over time of h · hs_t."""

    def __init__(self, vocab_size, embed_size, hidden_size, peeky=False, attention=False):
        super().__init__()
        self.peeky, self.attention = peeky, attention
        self.enc_embed = nn.Embedding(vocab_size, embed_size)
        self.encoder = nn.LSTM(embed_size, hidden_size, batch_first=True)
        self.dec_embed = nn.Embedding(vocab_size, embed_size)
        self.decoder = nn.LSTM(embed_size + (hidden_size if peeky else 0), hidden_size,
                               batch_first=True)
        extra = hidden_size if (peeky or attention) else 0
        self.out = nn.Linear(hidden_size + extra, vocab_size)

    def forward(self, questions, inputs, mask=None):
        """Logits (N, Ta, V) of the decoder reading `inputs` (teacher forcing)."""
        enc_hs, (h, c) = self.encoder(self.enc_embed(questions))
        xs = self.dec_embed(inputs)
        T = xs.shape[1]
        summary = h[-1][:, None, :].expand(-1, T, -1)
        if self.peeky:
            xs = torch.cat([summary, xs], dim=2)
        hs, _ = self.decoder(xs, (h, c))
        if self.attention:
            scores = hs @ enc_hs.transpose(1, 2)
            if mask is not None:
                scores = scores + mask[:, None, :]
            hs = torch.cat([torch.softmax(scores, dim=2) @ enc_hs, hs], dim=2)
        elif self.peeky:
            hs = torch.cat([summary, hs], dim=2)
        return self.out(hs)


KINDS = {"language_model": TorchLanguageModel, "regressor": TorchSequenceRegressor,
         "classifier": TorchSequenceClassifier, "seq2seq": TorchSeq2seq}
