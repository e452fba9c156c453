"""Benchmarks: our renders against a plain MoviePy render, measured in the same run. Not imported by the app."""
