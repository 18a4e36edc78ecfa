"""Which fields an Update request changes: those its mask names, or else those it sets."""

from __future__ import annotations

from typing import Any

from assistants_grpc.domain.errors import InvalidArgument


def fields_to_update(request: Any, updatable: tuple[str, ...]) -> set[str]:
    """Proto field names to change.

    With `update_mask`, exactly its paths (so a field can be cleared by naming it with an
    empty value). Without, every field the request sets: a present optional or message field,
    a non-empty list or map; proto3 cannot tell an empty list from an absent one.
    """
    if request.HasField("update_mask") and request.update_mask.paths:
        paths = set(request.update_mask.paths)
        unknown = sorted(paths - set(updatable))
        if unknown:
            raise InvalidArgument.field(
                "update_mask", f"names fields that cannot be updated: {', '.join(unknown)}"
            )
        return paths
    present: set[str] = set()
    descriptor = request.DESCRIPTOR
    for name in updatable:
        field = descriptor.fields_by_name[name]
        if field.is_repeated:
            if len(getattr(request, name)):
                present.add(name)
        elif request.HasField(name):
            present.add(name)
    return present


def metadata_update(request: Any) -> dict[str, str] | None:
    """The new metadata of an Update request that may change only metadata; None when the
    request leaves it as it is."""
    if "metadata" in fields_to_update(request, ("metadata",)):
        return dict(request.metadata)
    return None
