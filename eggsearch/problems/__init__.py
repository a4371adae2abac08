"""Problems from files (KernelBench's format): answers, their verification, and their scores.

* ``loader`` reads problem files (``Model``, ``get_inputs``, ``get_init_inputs``, optional
  ``SMALL`` sizes) and answer files (``ModelNew``); ``shapes`` finds a second shape.
* ``verifier`` (the protocol), ``anticheat`` (op recording, process integrity, allocator
  poisoning) and ``timing`` run in ``worker``, a subprocess; ``check`` drives two of them
  (the answer's, and a fresh one for eager and ``torch.compile``) and adds the parent's clock
  and the roofline (``cost``); ``bench`` scores a directory (fast_p, geometric mean).
* The offline proposer: ``graph`` (trace), ``reductions`` and ``fusion`` (groups),
  ``broadcast`` (operand indexing), ``exprs``/``codegen``/``kernels``/``rowkernel`` (Triton
  source), ``spaces`` (tunables), ``emit`` (the answer module), ``generate`` (all of it).
* ``op`` wraps a problem as an ``OpSpec`` and ``run`` tunes its answer in a study
  (``run --problem``); ``commands`` holds the CLI's parsers and handlers.
"""
