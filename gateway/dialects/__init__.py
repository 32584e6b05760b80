"""Inbound dialects beside OpenAI's chat completions: an API a caller speaks, translated at
the edge of the one pipeline (gateway/proxy.py `call_agent`, gateway/edge.py).

A dialect brings a parser (its request → the pipeline's `ChatRequest`), an `Edge` (the
pipeline's guarded OpenAI answer → its own JSON body or event stream) and its own error
envelope; admission, knowledge, the leak guard, fallbacks and billing are the pipeline's,
once per call. `anthropic_messages`: Anthropic's Messages API (`POST .../v1/messages`).
"""
