"""Logging filters named by the LOGGING setting.

An expected 403 (a permission check said no) is part of normal use: Django logs it on
``django.request`` as a warning with the exception's traceback attached, which makes one
refused click look like a crash in the logs. :class:`ExpectedForbiddenFilter` keeps the
warning line ("Forbidden (Permission denied): /path") and drops the traceback.
"""

from __future__ import annotations

import logging
from functools import cache

from django.core.exceptions import PermissionDenied


@cache
def _expected_refusals() -> tuple[type[BaseException], ...]:
    # DRF is imported on first use: the logging configuration is read before the apps load.
    from rest_framework import exceptions as drf

    return (PermissionDenied, drf.PermissionDenied, drf.NotAuthenticated)


class ExpectedForbiddenFilter(logging.Filter):
    """Log a refused request (403, or DRF's 401) as its one warning line, without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, _expected_refusals()):
            record.exc_info = None
            record.exc_text = None
        return True
