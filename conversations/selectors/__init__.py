"""Reads, one module per sub-domain: `conversations`, `branches`, `messages`,
`snapshots`, `runs`, `approvals`, `tasks`. They return models or plain data classes;
the JSON of docs/protocol.md is made at the edges (`presenters`, `pages`, `exports`).

`conversations.conversation_for_user` and `approvals.approval_for_user` are the one
place that fetches each object by id and checks the user may touch it: every HTTP and
websocket path goes through them."""
