"""Recurrent models (RNN, LSTM, GRU) composed from tinygraph primitives. Grows in later work."""
