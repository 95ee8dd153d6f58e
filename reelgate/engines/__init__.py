"""Engines that turn a validated request into media files."""
