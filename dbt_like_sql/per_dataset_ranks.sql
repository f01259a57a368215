-- Each model's rank on each dataset it has an edge on: `rank` 1 = best (highest
-- goodness), tied models share the best rank of their group (1, 2, 2, 4).
-- `normalised_rank` is the engine's rank for the Overall baseline: 0 = best,
-- 1 = worst, ties share their average rank, a dataset with one model gives 0.
WITH ranked AS (
    SELECT
        dataset,
        model,
        score,
        goodness,
        RANK() OVER (PARTITION BY dataset ORDER BY goodness DESC) AS rank,
        COUNT(*) OVER (PARTITION BY dataset, goodness) AS n_tied,
        COUNT(*) OVER (PARTITION BY dataset) AS n_models
    FROM staged_fid_edges
)
SELECT
    dataset,
    model,
    score,
    goodness,
    rank,
    n_models,
    (rank + (n_tied - 1) / 2 - 1) / GREATEST(n_models - 1, 1) AS normalised_rank
FROM ranked
ORDER BY dataset, rank, model
