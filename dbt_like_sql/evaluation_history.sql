-- Evaluation history: for each series (protocol, level, method, metric) the value
-- of every evaluation run in time order (run_number 1 = the first run), the previous
-- run's value and the change since it (NULL on a series' first run).
SELECT
    protocol,
    level,
    method,
    metric,
    ROW_NUMBER() OVER series AS run_number,
    run_id,
    evaluated_at,
    value,
    LAG(value) OVER series AS previous_value,
    value - LAG(value) OVER series AS change,
    n_datasets
FROM evaluations
WINDOW series AS (PARTITION BY protocol, level, method, metric ORDER BY evaluated_at, run_id)
ORDER BY protocol, level, method, metric, run_number
