"""Prometheus metrics on `metrics_port`: served over HTTP while the server runs, counting
every call by method and status code and timing it, and gone once the server has stopped."""

from __future__ import annotations

import aiohttp
import pytest

from assistants.v1 import assistant_service_pb2

from ..faults.helpers import MetricSamples, labels, scrape_metrics
from ..grpc.rich_errors import rpc_error
from ..support.servers import in_process_server, server_settings

CREATE_ASSISTANT = "/assistants.v1.AssistantService/CreateAssistant"
GET_ASSISTANT = "/assistants.v1.AssistantService/GetAssistant"


def _calls(samples: MetricSamples, method: str, code: str) -> float:
    return samples.get(("assistants_grpc_calls_total", labels(method=method, code=code)), 0.0)


async def test_metrics_count_and_time_calls_and_stop_with_the_server(sqlite_url: str) -> None:
    async with in_process_server(server_settings(sqlite_url, metrics_port=0)) as (app, stubs):
        port = app.metrics_port
        assert port is not None
        assert port != app.port
        before = await scrape_metrics(port)
        await stubs.assistants.CreateAssistant(
            assistant_service_pb2.CreateAssistantRequest(model="scripted"), timeout=5
        )
        await rpc_error(
            stubs.assistants.GetAssistant(
                assistant_service_pb2.GetAssistantRequest(assistant_id="asst_missing"), timeout=5
            )
        )
        after = await scrape_metrics(port)
        for method, code in ((CREATE_ASSISTANT, "OK"), (GET_ASSISTANT, "NOT_FOUND")):
            assert _calls(after, method, code) == _calls(before, method, code) + 1, method
        timed = ("assistants_grpc_call_seconds_count", labels(method=CREATE_ASSISTANT))
        assert after[timed] == before.get(timed, 0.0) + 1
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape_metrics(port)
