"""The model catalog: every model on disk and what its own files say about it.

Owns listing and walking the Hugging Face cache (`hfcache`, `hfwalk`), model folders
(`folders`), the on-disk index of a complete scan (`index`), the record of one model
(`entry`) and of what its files say (`meta`), the checks on what the index reads back
(`records`), name resolution (`resolve`), the scan itself (`scan`) and the readers of
config.json, safetensors and GGUF headers (`readers`), through which every file is opened.

May import: the standard library, `vllm_console.compat`. Never `serve`, `gpu`, `endpoint`
or `hub` (they build on the catalog, not the other way round).
"""
