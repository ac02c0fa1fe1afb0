"""Interchange with other toolkits: model formats in and out of nmt."""
