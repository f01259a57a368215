-- Every known model-dataset edge (fid_edges with a finite score), with its score
-- oriented by knowledge_metric so that higher is better (`goodness`, also for the
-- score before fine-tuning): downstream models rank by goodness and need not know
-- whether the metric is a distance (CLIP-FID) or an accuracy.
SELECT
    e.model,
    e.dataset,
    e.score,
    CASE WHEN m.higher_is_better THEN e.score ELSE -e.score END AS goodness,
    e.score_before,
    CASE WHEN m.higher_is_better THEN e.score_before ELSE -e.score_before END
        AS goodness_before,
    e.cost,
    e.provenance,
    m.metric
FROM fid_edges AS e
CROSS JOIN knowledge_metric AS m
WHERE isfinite(e.score)
ORDER BY e.dataset, e.model
