"""wa-onboard: the lab's JupyterHub, one command away."""

__version__ = "0.1.0"
