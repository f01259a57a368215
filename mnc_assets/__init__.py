"""Thin Dagster assets over `mnc_core`, one module per stage (data flows top to bottom):

    models.py      model_pipeline, model_feature_row                  (per model)
    datasets.py    dataset_manifest, dataset_embedding, dataset_distance_row (per dataset)
    pairs.py       lora_checkpoint, pair_samples, fid_edge            (per model x dataset)
    knowledge.py   imported_knowledge, fid_edges (+ checks.py), knowledge_base
    selection.py   matching_graph, node2vec_embeddings, ranker, recommendation (per dataset)
    evaluation.py  leave_one_out_evaluation, sparsity_evaluation
    sql_models.py  one asset per dbt_like_sql/*.sql file

`definitions.py` assembles them with the resources of `mnc_resources`.
"""
