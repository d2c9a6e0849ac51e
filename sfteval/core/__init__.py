"""The core: types every layer shares (errors, variants, item records, engine requests and results, metric specs,
the report's data model, findings) and plain readers (JSONL, YAML with line numbers). Nothing here imports torch or
any other part of sfteval; everything else imports from here.
"""
