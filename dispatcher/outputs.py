"""Publishing what one record produced: everything but the ledger's entries first, then the entries, so an entry
(`dead`) never stands for a record (its dead letter) the broker has not acknowledged; and a record the broker
refuses for good is replaced until what is left fits, so the partition behind it keeps moving."""
import logging

from dispatcher.delivery import Dispatcher
from dispatcher.jobs import Source
from dispatcher.ledger import DeliveryLedger
from schemas.kafka.publishing import Output, Publisher, RecordsRefused

log = logging.getLogger("mercury.dispatcher.outputs")


async def publish_outputs(outputs: list[Output], source: Source, publisher: Publisher, dispatcher: Dispatcher,
                          ledger: DeliveryLedger) -> None:
    """Returns once every record (or what stands in for it) was acknowledged; retries the broker's outages."""
    pending, entries = ledger.entries_last(outputs)
    while pending:
        try:
            await publisher.publish(pending)
            pending = []
        except RecordsRefused as refused:
            pending, more_entries = ledger.entries_last(dispatcher.instead_of_refused(refused.refused, source))
            entries += more_entries
    try:
        await publisher.publish(entries)
    except RecordsRefused as refused:
        for output, err in refused.refused:
            log.error("ledger_entry_refused", extra={"key": output.key, "bytes": len(output.value), "error": str(err)})
