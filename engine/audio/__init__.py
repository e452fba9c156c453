"""The sound of a video: loudness measured by ffmpeg's EBU R128 meter, speech mastered for streaming."""
