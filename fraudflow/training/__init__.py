"""Learning from labels in batch: the feature log, the labels store, the trainer,
the model registry and the hot-swapped model every worker scores with.

- :mod:`.schema`: the PostgreSQL tables (migrations after the decision tables).
- :mod:`.featurelog`: every decision's exact model inputs, to PostgreSQL or a file.
- :mod:`.labels`: labels from the labels topic, stored idempotently (latest wins).
- :mod:`.risk`: entity risk features (smoothed confirmed-fraud rates).
- :mod:`.model`: a trained model (LightGBM text format), its calibration and risk tables.
- :mod:`.trainer`: training set at a cutoff, fit, calibrate, hold out, promote.
- :mod:`.registry`: the versioned artifacts in PostgreSQL.
- :mod:`.watcher`: polls the registry, swaps the model atomically for every worker.
- :mod:`.simulate`: the backtest's retraining every R of event time.

See docs/training.md.
"""
