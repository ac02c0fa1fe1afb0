"""Decoding: greedy, beam and sampling search over the model contract; the Translator."""
