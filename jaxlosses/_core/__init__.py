"""Shared core: reductions and masks, argument checks, stable primitives."""
