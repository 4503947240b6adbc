"""Text from a trained language model: words in, sampled words out."""
from .data import EOS


def start_ids(vocab, text):
    """The ids of the whitespace-separated words of `text`; a word missing from the
    vocabulary is a ValueError naming it."""
    words = text.split()
    if not words:
        raise ValueError("the start text has no words")
    for word in words:
        if word not in vocab.word_to_id:
            raise ValueError(f"start word {word!r} is not in the vocabulary "
                             f"({len(vocab)} words; PTB writes numbers as N and rare words "
                             "as <unk>)")
    return [vocab.word_to_id[w] for w in words]


def generate_text(model, vocab, start, words, temperature=1.0, top_k=None, seed=None):
    """`start` (text) followed by `words` sampled words, <eos> shown as a line break (see
    LanguageModel.generate for the sampling settings)."""
    ids = model.generate(start_ids(vocab, start), words, temperature, top_k, seed)
    pieces = []
    for word in start.split() + [vocab.id_to_word[i] for i in ids]:
        if word == EOS:
            pieces.append("\n")
        else:
            pieces.append(word if not pieces or pieces[-1] == "\n" else " " + word)
    return "".join(pieces)
