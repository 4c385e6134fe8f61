"""The image viewer: window/level, its controls and the session strip."""
