"""The contract every Mercury component and every outside producer follows: Avro schemas, topic names,
the event and outcome vocabulary, and the Confluent wire-format codec."""
