"""OpenAI's Videos API (``/v1/videos``) on reelgate's tasks: the mapping, the use-cases, and the
still images of a video."""
