"""Closed-form references (exact Bayes, Gaussian conditioning): pure NumPy, never Brian2.

Tests and analysis both use these to check what the circuits compute.
"""
