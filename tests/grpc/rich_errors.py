"""Reading the rich error model off a failed call: the status code, and the `google.rpc.Status`
details (ErrorInfo, BadRequest, ResourceInfo) the server packs into the trailers."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "assistants.v1"

# Words that would mean internals reached the caller.
INTERNAL_WORDS = ("Traceback", "Exception", "sqlite", "asyncpg", "SELECT ", "INSERT ", ".py")


@dataclass
class RichError:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    violations: dict[str, str] = field(default_factory=dict)
    """Field path to description, from the BadRequest detail."""
    resource_type: str = ""
    resource_name: str = ""

    @classmethod
    def of(cls, error: grpc.aio.AioRpcError) -> RichError:
        rich = cls(code=error.code(), message=error.details() or "")
        status = rpc_status.from_call(error)
        assert status is not None, f"no google.rpc.Status in the trailers of {error!r}"
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                rich.reason, rich.domain = info.reason, info.domain
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                rich.violations.update(
                    (v.field, v.description) for v in bad_request.field_violations
                )
            elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                resource = error_details_pb2.ResourceInfo()
                detail.Unpack(resource)
                rich.resource_type, rich.resource_name = (
                    resource.resource_type,
                    resource.resource_name,
                )
        return rich

    def assert_clean(self) -> None:
        """Every error carries ErrorInfo in our domain, and nothing from the inside."""
        assert self.domain == ERROR_DOMAIN, self
        assert self.reason, self
        for word in INTERNAL_WORDS:
            assert word not in self.message, self


async def rpc_error(call: Awaitable[Any]) -> RichError:
    """The rich error of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = RichError.of(caught.value)
    error.assert_clean()
    return error


async def invalid_field(call: Awaitable[Any], field_path: str) -> RichError:
    """The error of a call that must fail with INVALID_ARGUMENT naming `field_path`."""
    error = await rpc_error(call)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error
    assert field_path in error.violations, (field_path, error)
    return error


async def not_found(call: Awaitable[Any], object_id: str) -> RichError:
    """The error of a call that must fail with NOT_FOUND naming `object_id`."""
    error = await rpc_error(call)
    assert error.code == grpc.StatusCode.NOT_FOUND, error
    assert error.resource_name == object_id, error
    assert error.reason.endswith("_NOT_FOUND"), error
    return error
