"""reelgate: a self-hosted, RunningHub-compatible video generation API."""

__version__ = "0.1.0"
