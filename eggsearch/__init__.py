"""eggsearch: expert structures for GPU kernels, tuned by an Optuna study and measured honestly.

The package is laid out by the three seams a newcomer extends:

* ``eggsearch/ops/<op>.py``       an operator: PyTorch reference, inputs, FLOP/byte formulas,
                                  tolerances and its Triton structures (templates).
* ``eggsearch/proposers/``        where structures come from (the built-in library; LLM agents).
* ``eggsearch/backends/``         where candidates are compiled, verified and timed.

Everything numeric lives in YAML: ``search_spaces/<op>.yaml`` (tunables per structure) and
``expert_rules/`` (hardware specs, constraints, which structures suit which shapes).
"""

__version__ = "0.1.0"
