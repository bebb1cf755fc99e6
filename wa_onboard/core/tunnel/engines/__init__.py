"""Tunnel engines."""
