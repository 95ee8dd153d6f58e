"""Fetching and checking input media before an engine sees it."""

from reelgate.media.fetch import FetchedMedia, MediaFetcher

__all__ = ["FetchedMedia", "MediaFetcher"]
