-- The Overall baseline's ranking (one order for every dataset): each model's mean
-- normalised rank over the datasets it has an edge on (0 = best on all of them),
-- how many datasets that is, and its place in the order (1 = best; ties share it).
SELECT
    model,
    AVG(normalised_rank) AS mean_normalised_rank,
    COUNT(*) AS n_datasets,
    RANK() OVER (ORDER BY AVG(normalised_rank)) AS overall_rank
FROM per_dataset_ranks
GROUP BY model
ORDER BY overall_rank, model
