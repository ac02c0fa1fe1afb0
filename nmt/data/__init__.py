"""Data: corpus recipes, parallel-text reading, SentencePiece tokenizer, token-budget batches."""
