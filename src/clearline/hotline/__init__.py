"""The hotline endpoint: the glue between Session, gate, registry and log, written once."""

from clearline.hotline.endpoint import (
    Answered,
    AssetRegistry,
    Cleared,
    CoverStory,
    Endpoint,
    EndpointConfig,
    EndpointEvent,
    LogEntry,
    QuerySent,
    Registry,
    Unresolved,
    Waiting,
)

__all__ = [
    "Answered",
    "AssetRegistry",
    "Cleared",
    "CoverStory",
    "Endpoint",
    "EndpointConfig",
    "EndpointEvent",
    "LogEntry",
    "QuerySent",
    "Registry",
    "Unresolved",
    "Waiting",
]
