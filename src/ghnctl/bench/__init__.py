"""``ghnctl bench``: honest comparisons of initialisations and GHNs, with every number labelled.

Three benches, one module each, all built on the existing engine (no second training loop):

* ``init_bench``: models x initialisations x seeds, fine-tuned with ``ghnctl.training.finetune``;
  validation accuracy with no fine-tuning (epoch 0) and after every epoch, mean ± std over seeds.
* ``ghn_bench``: zero-shot top-1 of one or more GHNs over an architecture set, with the norm of
  the predicted parameters (checked against the published GHN-3 values where they exist).
* ``speed``: graph and prediction timings per architecture and GHN, with peak memory.

Shared pieces: ``store`` (cell keys, and the append-only JSONL
of finished cells that makes a run survive interruptions and ``--resume`` skip what is done),
``events`` (progress reported through a callback; the engine never prints), ``archs`` (architecture
sets), ``grid`` (the GHN x architecture walk of ``ghn`` and ``speed``), ``ghns`` (each GHN loaded
once), ``data`` (the evaluation images and their description), ``stats`` (mean ± sample std,
median), ``labels`` (what each column may be called), ``table``/``tables``/``export`` (tables as
data, Markdown and CSV), ``plot`` (matplotlib, optional extra), ``memory`` (peak memory),
``reference`` (published GHN-3 numbers shipped as data).

Importing this package does not import torch; the bench modules do.
"""
