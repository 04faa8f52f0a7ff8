"""Readers of a model's own files, never loading weights: config.json (`config`),
safetensors headers (`safetensors`), GGUF headers (`gguf`).

May import: the standard library, `catalog.meta` (the record `config` fills), and each other
(`safetensors` uses `config`'s JSON helpers).
"""
