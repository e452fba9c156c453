"""Render methods (MoviePy, FFmpeg, emergency), each run in an isolated, watched child."""
