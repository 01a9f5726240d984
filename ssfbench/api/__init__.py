"""The plugin contract: what method plugins and dataset adapters import.

:mod:`.method` (``Method``, ``MethodConfig``), :mod:`.dataset` (``Dataset``, ``VideoSource``,
``LabeledFrames``, ``Fold`` and the optional capabilities as Protocols), :mod:`.settings` (``Option``:
adapter options and method settings), :mod:`.preprocess` (``Preprocess``), :mod:`.registry` (entry
points), :mod:`.checkpoint` (the checkpoint format), :mod:`.verify` (``ssfbench datasets verify`` and
its ``Report``). This room imports only :mod:`ssfbench.runtime` and :mod:`ssfbench.errors`.
"""
