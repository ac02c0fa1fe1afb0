"""Evaluation: sacreBLEU and chrF with their signatures."""
