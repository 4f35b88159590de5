"""The thin HTTP gateway: validates mails, writes them to Kafka, answers only after the broker acknowledged."""
