"""Static word vectors (Word2Vec, FastText) trained on a corpus side, for nmt's embeddings."""
