"""TempBalance as a drop-in for training frameworks. Import the submodule you need; nothing is imported here.

Example
-------
>>> from modelbalance.integrations.hf import TempBalanceTrainer  # doctest: +SKIP
>>> from modelbalance.integrations.lightning import TempBalanceCallback  # doctest: +SKIP
>>> from modelbalance.integrations.accelerate import attach_tempbalance  # doctest: +SKIP
>>> from modelbalance.integrations.distributed import shard_measurement  # doctest: +SKIP

- :mod:`.hf`: Hugging Face ``Trainer``: ``TempBalanceTrainer``, ``TempBalanceCallback`` (``transformers``).
- :mod:`.lightning`: Lightning ``TempBalanceCallback``, needs ``lightning``.
- :mod:`.accelerate`: ``attach_tempbalance`` for ``accelerator.prepare``-d models and optimizers.
- :mod:`.distributed`: DDP / FSDP: measurement split across ranks, identical factors everywhere.

The framework packages are optional extras (``pip install modelbalance[hf]`` / ``[lightning]``); importing
``modelbalance`` or this package never imports them.
"""
