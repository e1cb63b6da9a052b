"""Flink-free per-record logic, importable and testable without a Flink cluster.

Modules:
    config      ValidationConfig: every limit of the event contract.
    reasons     Reason: stable dead-letter reason codes.
    text        normalize_query, clean_label, clean_id: the shared text cleaners.
    fields      readers that check and repair one field (also used by serving).
    validation  validate(raw, ...) -> Verdict; to_json for clean events.
    dlq         to_dlq_record for freshrank.events.dlq.
    clean_record  to_clean_record / from_clean_record for freshrank.events.clean.
    imputation  RunningStats and impute for missing prices and quantities.

Nothing is imported here, so importing one module does not pull in the others.
The contract is docs/event-contract.md.
"""
