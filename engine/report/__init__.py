"""The audit: tags after each stage, the report, the rounds page and the notebook helpers."""
