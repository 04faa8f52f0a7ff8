"""Downloads through huggingface_hub, from the hub or a mirror (HF_ENDPOINT), with resume.

`download` is the public API (download_model, its progress and errors); `fetch` does the
per-file work; `job` is what both share (neither imports the other's private names).
May import: huggingface_hub, httpx, `core.catalog` (sizes, entries), `vllm_console.compat`.
"""
