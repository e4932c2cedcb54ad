"""OpenAPI annotations that work whatever the host project's `REST_FRAMEWORK` says.

drf-spectacular's `extend_schema` builds each annotated operation on `DEFAULT_SCHEMA_CLASS` when it decorates a
method, and a project that leaves that setting unset gets DRF's own AutoSchema, which spectacular cannot use.
`documented` pins the base to spectacular's AutoSchema first.
"""

from collections.abc import Callable
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema


def documented(**kwargs: Any) -> Callable[[Any], Any]:
    """`extend_schema(**kwargs)` on top of drf-spectacular's AutoSchema (for view methods and `@action`s)."""
    annotate = extend_schema(**kwargs)

    def decorator(function: Any) -> Any:
        existing = getattr(function, "kwargs", None) or {}
        if "schema" not in existing:
            function.kwargs = {**existing, "schema": AutoSchema}
        return annotate(function)

    return decorator
