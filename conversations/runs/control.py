"""Asking whichever process executes a run to stop it. Light on purpose: the signal
that stops a deleted conversation's runs imports it in every process, management
commands included, without loading the graph."""

from channels.layers import get_channel_layer

# Every process's executor listens here for requests to stop a run it executes.
CONTROL_GROUP = "agent.control"


async def arun_stop_request(run_id) -> None:
    await get_channel_layer().group_send(CONTROL_GROUP, {"type": "run.cancel", "run_id": str(run_id)})
