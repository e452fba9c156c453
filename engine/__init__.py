"""Quote to Speak engine: a quote becomes a narrated MP4 under a memory budget.

Import what you need from the submodules; this package imports nothing heavy on
purpose, so a render child that needs only ffmpeg starts in a few megabytes.
"""
