"""Monitoring: drift of scored days against the champion's reference (Evidently), the
Evidently workspace, and on-call alerts (webhook payloads and the Airflow notifier)."""
