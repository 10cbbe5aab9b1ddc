"""Benchmarks run by ``pcsim bench``."""
