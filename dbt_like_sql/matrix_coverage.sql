-- How much of the model x dataset matrix is known, per model: on how many datasets
-- it has a known edge (staged_fid_edges), out of all datasets (those with features
-- and those in fid_edges), and that share. Models are those with features and those
-- in fid_edges, so a model with no edge yet shows coverage 0.
WITH all_datasets AS (
    SELECT dataset FROM dataset_features
    UNION
    SELECT dataset FROM fid_edges
),
all_models AS (
    SELECT model FROM model_features
    UNION
    SELECT model FROM fid_edges
),
known AS (
    SELECT model, COUNT(DISTINCT dataset) AS n_known
    FROM staged_fid_edges
    GROUP BY model
)
SELECT
    all_models.model,
    COALESCE(known.n_known, 0) AS n_datasets_known,
    (SELECT COUNT(*) FROM all_datasets) AS n_datasets,
    COALESCE(known.n_known, 0) / NULLIF((SELECT COUNT(*) FROM all_datasets), 0) AS coverage
FROM all_models
LEFT JOIN known USING (model)
ORDER BY coverage DESC, model
