"""Request-body fields the API's serializers share: limits that keep bad values out of the
database, where they would be a 500 instead of a 400 naming the field."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

MAX_ID = 2**63 - 1  # PostgreSQL's bigint: a larger id reached the query as a DataError (500)
MAX_TIME_SPENT_MS = 24 * 3600 * 1000  # a day on one patch; the column is a 32-bit integer


def id_field(**kwargs: Any) -> serializers.IntegerField:
    """A row id in a request body: 1 to PostgreSQL's bigint maximum."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def time_spent_field() -> serializers.IntegerField:
    return serializers.IntegerField(required=False, allow_null=True, min_value=0,
                                    max_value=MAX_TIME_SPENT_MS)


def no_nul_characters(value: object) -> None:
    """PostgreSQL's jsonb cannot hold U+0000 in a string: refuse it here, as DRF's
    CharField does, instead of a 500 from the database."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError("strings may not contain NUL (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul_characters(key)
            no_nul_characters(item)
    elif isinstance(value, list):
        for item in value:
            no_nul_characters(item)
