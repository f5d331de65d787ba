"""Runs: one agent turn each, from the user's message to its final reply.

`transitions` owns the Run row and every change of its status; `executor` schedules
runs on this process, one conversation's at a time; `attempt` is one attempt of a run,
which owns all its state and drives it through the graph to its end; `runtime` holds
the checkpointer, graph and executor of a process; `control` asks whichever process
executes a run to stop it.
"""
