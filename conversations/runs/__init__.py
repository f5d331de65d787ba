"""Runs: one agent turn each, from the user's message to its final reply.

`transitions` owns the Run row and every change of its status; `executor` schedules
runs on this process and drives each attempt through the graph (`attempt`); `runtime`
holds the checkpointer, graph and executor of a process; `control` asks whichever
process executes a run to stop it.
"""
