-- The latest evaluation per protocol: every row of the protocol's most recent run
-- (methods x metrics, per level), with the change since the series' previous run.
SELECT
    protocol,
    level,
    method,
    metric,
    run_id,
    evaluated_at,
    value,
    change,
    n_datasets
FROM evaluation_history
QUALIFY run_id = FIRST_VALUE(run_id) OVER (
    PARTITION BY protocol ORDER BY evaluated_at DESC, run_id DESC
)
ORDER BY protocol, level, method, metric
