"""LLM agents for both stages: the client layer, the agents, their prompts and memory.

* ``client.py``   one layer over the ``openai`` package (imported on first use): retries,
                  limits, usage per agent and stage, the response cache (``cache.py``).
* ``agents.py``   planner, coder, debugger and tuning advisor; prompts in ``prompts/*.j2``
                  (``prompts.py``), reply schemas (``replies.py``), numbers in
                  ``prompts/agents.yaml`` (``settings.py``).
* ``safety.py``   the static screen of generated code.
* ``memory.py``   the compact per-stage memory.
* ``store.py``    saved structures (``run --structures DIR``).
* ``advisor.py``  the stage-two proposal operator (the tuner's ``advisor`` hook).
* ``session.py``  what one run shares; ``local.py`` the local model (``serve-local``).

Stage one's proposer is :mod:`eggsearch.proposers.llm`.
"""
