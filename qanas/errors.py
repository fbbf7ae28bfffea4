"""Errors raised by qanas. Each names the bad value, the valid choices and the fix."""

from __future__ import annotations


class QanasError(Exception):
    """Base class of every error qanas raises on purpose."""


class ConfigError(QanasError, ValueError):
    """An invalid architecture string, option or configuration value."""


class DatasetError(QanasError, ValueError):
    """A dataset folder that is missing files, has an unknown layout or unreadable images."""


class CheckpointError(QanasError, ValueError):
    """A checkpoint that is truncated, corrupt or from an incompatible supernet."""
