"""Corpus recipes that build real parallel text from Debian packages."""
