"""Writes, one module per sub-domain: `conversations`, `turns` (send, edit, regenerate,
retry), `branches`, `approvals`, `summaries`. Each returns what changed; callers publish
events after it is committed. A run's own transitions are `conversations.runs.transitions`."""
