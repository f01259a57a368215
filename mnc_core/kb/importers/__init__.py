"""Importers: turn published model-zoo fine-tuning tables into knowledge bases.

`transfergraph` reads a TransferGraph experiment folder, `parc` the PARC oracle
table; both return an `ImportResult` (the KB plus dropped-row counts by reason).
"""
