"""Mercury analytics: the event stream in ClickHouse, and the SQL that answers operators' questions.

Imports only `schemas`; reads from ClickHouse always de-duplicate, because the sink delivers at least once.
"""
