"""Fetching and checking input media before an engine sees it."""
