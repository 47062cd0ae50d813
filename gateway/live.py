"""The WebSocket handler's lane for subscription results encoded once for many.

`schema.subscriptions` runs a selection over an event once for every subscription that
shares it and hands over the JSON text of the result's payload; this handler sends it as
the operation's `next` message, with the same checks as any other message (an operation
completed, or a connection the gateway closed, sends nothing).
"""

from __future__ import annotations

import json
from functools import partial

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation

from gateway.websocket import ConnectionContext, TransportHandler
from resolvers.context import Context
from schema.subscriptions import LANE


class Encoded(dict[str, object]):
    """A message already encoded: the endpoint's `encode_json` gives `text` as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LiveTransportHandler(TransportHandler):
    async def run_operation(self, operation: Operation[Context, None]) -> None:
        LANE.set(partial(self._send_encoded, operation))  # this operation's task only
        await super().run_operation(operation)

    async def _send_encoded(self, operation: Operation[Context, None], payload: str) -> None:
        context = self.context
        if operation.completed or (isinstance(context, ConnectionContext) and context.closed):
            return
        text = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":{payload}}}'
        await self.websocket.send_json(Encoded(text))  # the adapter's disconnect handling


def encoded(message: object) -> str | None:
    """The text of a message that was encoded already, else None."""
    return message.text if isinstance(message, Encoded) else None
