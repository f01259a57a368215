"""Match & Choose engine: a pure library (no Dagster imports).

Sub-packages follow the data flow, one stage per module:
- `kb`: the knowledge base (on-disk format, validation, importers, demo generator).
- `engine`: matching graph -> Node2Vec+ -> ranker -> prediction, metrics, protocols.
- `t2i`: the text-to-image side (zoo and model features, datasets, CLIP embeddings,
  LoRA fine-tuning, sampling, image-quality metrics).
"""
