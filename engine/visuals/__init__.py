"""What the video shows: text and scripts, typesetting, the card, captions, backgrounds."""
