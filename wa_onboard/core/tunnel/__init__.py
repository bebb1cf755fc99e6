"""The tunnel."""
