"""An OpenAI- and Anthropic-compatible mock upstream whose behaviour is chosen per key.

`behaviours` (key grammar), `payloads` and `sse` (response shapes) are pure;
`app` is the ASGI app and its request log; `server` runs it.
"""
