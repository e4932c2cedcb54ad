"""OpenAPI annotations that work whatever the host project's `REST_FRAMEWORK` says.

drf-spectacular's `extend_schema` builds each annotated operation on `DEFAULT_SCHEMA_CLASS` when it decorates a
method, and a project that leaves that setting unset gets DRF's own AutoSchema, which spectacular cannot use.
`documented` pins the base to spectacular's AutoSchema first.

`add_links` (a postprocessing hook, in `SCHEMA_SETTINGS`) adds OpenAPI links: from an answer's id to the operations
on that object, which clients and the contract tests' stateful phase follow.
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


# --- links between operations --------------------------------------------------------------------------------------
def _link(operation_id: str, description: str, id_from: str = "$response.body#/id", **extra: Any) -> dict[str, Any]:
    return {"operationId": operation_id, "description": description, "parameters": {"id": id_from}, **extra}


# What a client can do next with what an answer gave it: the ids of a new or read object lead to the operations on
# it (OpenAPI links, which clients and Schemathesis's stateful phase follow). Keyed by operationId and status.
_POST = "$request.path.id"  # the id the request was sent to
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("v1_channels_bluesky_create", "201"): {
        "GetChannel": _link("v1_channels_retrieve", "The channel just connected."),
        "ChannelEvents": _link("v1_channels_events_retrieve", "Its event log."),
        "ChannelPosts": _link("v1_channels_posts_retrieve", "The account's recent posts."),
        "RefreshChannel": _link("v1_channels_refresh_create", "Refresh its session now."),
        "DisconnectChannel": _link("v1_channels_destroy", "Disconnect it."),
        "PublishWithChannel": {
            "operationId": "v1_posts_create",
            "description": "Publish a post with it.",
            "requestBody": {"channel": "$response.body#/id"},
        },
    },
    ("v1_channels_retrieve", "200"): {
        "ChannelEvents": _link("v1_channels_events_retrieve", "Its event log."),
        "RefreshChannel": _link("v1_channels_refresh_create", "Refresh its session now."),
    },
    ("v1_channels_destroy", "204"): {
        "GetChannel": _link("v1_channels_retrieve", "Still listed, health `disconnected`.", _POST),
        "RemoveChannel": _link("v1_channels_remove_create", "Remove it now that it is disconnected.", _POST),
        "DisconnectAgain": _link("v1_channels_destroy", "A second disconnect changes nothing.", _POST),
    },
    ("v1_channels_remove_create", "204"): {
        "GetChannel": _link("v1_channels_retrieve", "Gone: 404.", _POST),
    },
    ("v1_posts_create", "201"): {
        "GetPost": _link("v1_posts_retrieve", "The post just created."),
        "EditPost": _link("v1_posts_partial_update", "Edit or reschedule it while it is scheduled."),
        "CancelPost": _link("v1_posts_cancel_create", "Cancel it while it is scheduled."),
        "PublishAgain": _link("v1_posts_publish_create", "Publish it again when it failed or waits."),
        "DeletePost": _link("v1_posts_destroy", "Delete it."),
    },
    ("v1_posts_retrieve", "200"): {
        "EditPost": _link("v1_posts_partial_update", "Edit or reschedule it while it is scheduled."),
        "DeletePost": _link("v1_posts_destroy", "Delete it."),
    },
    ("v1_posts_partial_update", "200"): {
        "GetPost": _link("v1_posts_retrieve", "The post as edited."),
        "CancelPost": _link("v1_posts_cancel_create", "Cancel it."),
        "DeletePost": _link("v1_posts_destroy", "Delete it."),
    },
    ("v1_posts_cancel_create", "204"): {
        "GetPost": _link("v1_posts_retrieve", "Kept in the history as `cancelled`.", _POST),
        "DeletePost": _link("v1_posts_destroy", "Delete it from the history.", _POST),
    },
    ("v1_posts_destroy", "204"): {
        "GetPost": _link("v1_posts_retrieve", "Gone: 404.", _POST),
    },
}


def add_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add `LINKS` to the operations' responses (operations the schema does not
    describe, e.g. in a project that excludes some, keep no link to or from them)."""
    operations = {
        operation["operationId"]: operation
        for path in result.get("paths", {}).values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for (source, status), links in LINKS.items():
        response = operations.get(source, {}).get("responses", {}).get(status)
        if response is None:
            continue
        present = {name: link for name, link in links.items() if link["operationId"] in operations}
        if present:
            response["links"] = {**response.get("links", {}), **present}
    return result
