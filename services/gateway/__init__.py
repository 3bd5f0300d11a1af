"""Composition root: the one-process gateway app, the `motpipe` CLI and the demo.

The only package allowed to import several services: it wires them together, they
never import each other.
"""
