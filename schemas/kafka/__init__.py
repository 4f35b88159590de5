"""How Mercury's processes use Kafka, shared by the gateway and the dispatchers: an asyncio producer that answers
once the broker acknowledged, a publisher that retries until then, replicas of the small topics that hold shared
state, and the client timings. Not part of the contract: outside producers need none of it."""
