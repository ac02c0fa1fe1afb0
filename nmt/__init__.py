"""nmt: the Transformer of *Attention Is All You Need* and the recurrent models it replaced."""

__version__ = "0.1.0"
