"""`python -m vllm_console` is the same as the `vllm-console` command."""

from vllm_console.cli import main

raise SystemExit(main())
