"""Recurrent models (RNN, LSTM, GRU) composed from tinygraph primitives, and their training."""
from .cells import GRUCell, LSTMCell, RNNCell, lstm_gates
from .data import BPTTBatches, Corpus, Vocabulary
from .models import LanguageModel, SequenceClassifier, SequenceRegressor
from .recurrent import Recurrent, StackedRecurrent
from .torch_bridge import from_torch, to_torch

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "lstm_gates", "Recurrent", "StackedRecurrent",
           "LanguageModel", "SequenceRegressor", "SequenceClassifier", "Corpus", "BPTTBatches",
           "Vocabulary", "to_torch", "from_torch"]
