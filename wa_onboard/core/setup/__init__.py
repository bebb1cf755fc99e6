"""Setup: the plan runner, its steps, the conda scripts."""
