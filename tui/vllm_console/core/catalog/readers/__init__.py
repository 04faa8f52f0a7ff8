"""Readers of a model's own files, never loading weights: config.json (`config`),
safetensors headers (`safetensors`), GGUF headers (`gguf`), which files vLLM loads as weights
(`weightfiles`) and what quantized tensors hold (`quant`); `files` opens every file the
catalog reads (without blocking, regular files only, size-capped) and `numbers` bounds every
number read from one.

May import: the standard library, `catalog.meta` (the record `config` fills), and each other
(`safetensors` uses `quant`, `weightfiles` uses `config`'s JSON helpers; all use `files`
and `numbers`).
"""
