"""Pre-aggregated state behind the operators' questions: settled minutes.

Reading every raw event of a month with FINAL takes seconds; the questions instead read state computed once
per minute, after the minute is over:

- `provider_minutes`: per minute, tenant and provider, the attempts, sends, failures by cause and a histogram
  of send latencies (exact: one count per distinct millisecond value);
- `mail_milestones`: per mail, by the minute it was accepted: its tenant, acceptance, first dispatch, first
  send, whether it finished, its last event and provider, and its attempts;
- `mail_counts`: stored mails per minute and tenant (the total behind `GET /mails/`).

The sink settles (`settle.py`) every minute a while after it ends, from the raw tables one row per record id
(LIMIT 1 BY, not FINAL: current ClickHouse reads every part under FINAL), so a re-delivered row never counts
twice, and each event is attributed to the tenant of its mail's row as stored then. `settled_minutes` records
what was settled, with the version of the rows written (`spans.py`); the sink also records there every minute
it writes a late row into, and such a minute reads raw until it is settled again. A read splits its window
(`spans.Spans`): the settled minutes from the rollups, everything else from the raw tables through the very SQL
the settler runs (`provider_slots.py`, `milestones.py`, `mail_counts.py`), so both halves answer alike by
construction and the answer is the raw tables' answer at every moment.
"""
