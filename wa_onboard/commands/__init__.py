"""One module per group of subcommands; each exposes ``run(command, ctx) -> exit code``."""
