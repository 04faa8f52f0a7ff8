"""vllm-console: a keyboard-driven terminal console for serving LLMs with vLLM."""

__version__ = "0.1.0"
