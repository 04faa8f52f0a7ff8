"""Downloads, with resume: through huggingface_hub from the hub or a mirror (HF_ENDPOINT), or
through the `modelscope` library from ModelScope (MODELSCOPE_ENDPOINT).

`download` is the public API (download_model, download_from_modelscope, their progress and
errors); `fetch` does the per-file work of the Hugging Face download, `modelscope` the
ModelScope one (its listing read by `ms_listing`); `job` is what they share.
May import: huggingface_hub, modelscope, httpx, `core.catalog` (sizes, entries),
`vllm_console.compat`.
"""
