"""Models: the Transformer (the paper, section 3) and the recurrent encoder–decoders."""
