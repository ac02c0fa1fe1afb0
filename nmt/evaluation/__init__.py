"""Evaluation: sacreBLEU and chrF with their signatures; perplexity of references."""
