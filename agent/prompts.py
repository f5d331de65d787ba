SYSTEM_PROMPT = (
    "You are a helpful assistant inside a chat app. You can use tools to do work for "
    "the user. Answer in Markdown. The current conversation's earlier messages are "
    "included for context."
)

# Leads the summary of the turns that no longer fit in the context, in the system prompt.
SUMMARY_HEADING = "Summary of the earlier part of this conversation (those turns are not shown):"

SUMMARY_PROMPT = (
    "Summarize a conversation between a user and an assistant for the assistant's own "
    "later use, in at most {words} words. Keep names, facts, numbers, decisions, what the "
    "user asked for, and the outcome of every tool call (sent, created, rejected, failed). "
    "Start from the previous summary, if there is one, and add what the new turns say. "
    "Reply with the summary only."
)

# The summary request shows turns as a plain transcript, one line a message.
TRANSCRIPT_USER = "User: "
TRANSCRIPT_ASSISTANT = "Assistant: "
TRANSCRIPT_TOOL = "Tool {name}: "
TRANSCRIPT_CALL = "Assistant called {name} with {args}"

# The result given to the model for a tool call of an earlier turn that never ran.
NOT_RUN = "Not run: the turn was stopped, or failed, before this call ran."
INVALID_ARGUMENTS = (
    "Error: the arguments of this {name} call are not valid JSON ({error}). Call the tool again "
    "with a JSON object as its arguments."
)
UNKNOWN_TOOL = "Error: there is no tool named {name!r}. The tools are: {tools}."
