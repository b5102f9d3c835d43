"""The training layer shared by ``finetune``, ``bench`` and the GHN trainer.

Modules (import the one you need; this package imports nothing, so ``import ghnctl.training`` is cheap):

* ``data``: ``DataConfig`` -> ``load_data`` -> ``DataBundle`` (splits, few-shot subsets);
  ``sources`` finds the images (ImageFolder trees, torchvision CIFAR), ``archive`` extracts
  ``.tar.gz`` files safely, ``transforms`` holds the CIFAR / ImageNet recipes and ``Normalizer``,
  ``loaders`` the seeded sampler, the datasets and the train / eval loaders;
* ``optim``: the recipe's optimizer, warmup + cosine schedule and the clipped optimizer step;
* ``amp``: the autocast dtype of a device, the autocast context and the GradScaler;
* ``seeding``: ``seed_everything``, capture / restore of every RNG, derived seeds;
* ``state``: atomic training-state checkpoints (safetensors + JSON) for exact resume;
* ``evaluate``: loss and top-1 accuracy of a model on a loader;
* ``dist``: torchrun environment, process group, collectives and per-rank sharding;
* ``configs``: typed configs from option values, and the resume merge;
* ``errors``: ``DataError``, ``StateError``, ``DistError``;
* ``finetune_config``, ``finetune``, ``events``: the fine-tuning command's config (and resume
  merge), its loop built on the modules above, and what the loop reports.
"""
