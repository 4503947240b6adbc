"""Penn Treebank models cross to PyTorch and back with the same test perplexity (to 0.01).

Reads ../shared/data/ptb beside the checkout (skipped elsewhere); each model trains for 150
batches only: the check is that both frameworks score the same model the same."""
import math
import pathlib

import pytest

torch = pytest.importorskip("torch")

import lstm  # noqa: E402
from lstm.data import BPTTBatches, Corpus  # noqa: E402
from lstm.train import PRESETS, Trainer, perplexity  # noqa: E402
from lstm.torch_bridge import torch_module  # noqa: E402

PTB = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb"
pytestmark = [pytest.mark.torch, pytest.mark.slow,
              pytest.mark.skipif(not (PTB / "ptb.test.txt").exists(),
                                 reason="Penn Treebank not found beside the checkout")]


@pytest.fixture(scope="module")
def corpus():
    return Corpus(PTB)


def torch_perplexity(module, ids):
    module.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for inputs, targets in BPTTBatches(ids, 10, 35):
            logits, state = module(torch.as_tensor(inputs), state)
            total += float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), torch.as_tensor(targets).reshape(-1)))
            count += 1
    return math.exp(total / count)


def test_a_tinygraph_ptb_model_scores_the_same_in_pytorch(tmp_path, corpus):
    trainer = Trainer(corpus, PRESETS["small"], tmp_path, log=lambda *a: None, compiled=True)
    for k in range(150):
        trainer.train_step(*trainer.batches.batch(k))
    ours = perplexity(trainer.model, corpus.ids["test"])
    theirs = torch_perplexity(lstm.to_torch(trainer.model), corpus.ids["test"])
    assert ours < 1000 and abs(ours - theirs) < 0.01, (ours, theirs)


def test_a_pytorch_ptb_model_scores_the_same_in_tinygraph(corpus):
    torch.manual_seed(0)
    vocab = len(corpus.vocab)
    twin = torch_module("language_model", dict(vocab_size=vocab, embed_size=100,
                                               hidden_size=100))
    opt = torch.optim.SGD(twin.parameters(), lr=20.0)
    batches, state = BPTTBatches(corpus.ids["train"], 20, 35), None
    for k in range(150):
        inputs, targets = batches.batch(k)
        logits, state = twin(torch.as_tensor(inputs), state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                 torch.as_tensor(targets).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.25)
        opt.step()
    theirs = torch_perplexity(twin, corpus.ids["test"])
    ours = perplexity(lstm.from_torch(twin), corpus.ids["test"])
    assert theirs < 1000 and abs(ours - theirs) < 0.01, (ours, theirs)
