"""The headless core: no textual, no rich, no printing.

Everything here returns typed results and reports progress through callbacks, so that the
CLI and the TUI are two renderings of the same work.
"""
