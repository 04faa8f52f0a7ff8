"""Downloads through huggingface_hub, from the hub or a mirror (HF_ENDPOINT), with resume.

`download` is the public API (download_model, its progress and errors); `fetch` does the
per-file work. May import: huggingface_hub, httpx, `core.catalog` (sizes, entries).
"""
