"""The headless core: no textual, no rich, no printing.

Three packages, ``tunnel`` (reach the hub and keep it reached; its ``__init__`` is the face the rest
uses), ``setup`` (the steps of a first run, one ``setup()`` entry) and ``doctor`` (layered checks),
over a few shared modules (profile, paths, places, prompts, remote, validate, redact, errors,
results, filelock, browser). Everything returns typed results and reports progress through
callbacks, so that the CLI and the TUI are two renderings of the same work.
"""
