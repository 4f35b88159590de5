"""Settings of the whole local stack the end-to-end and security tests share: a short retry ladder."""
BREAKER_FAILURES = 3
STACK_ENV = {
    "MERCURY_RETRY_DELAYS": "1,2,4,8,16",
    "MERCURY_BREAKER_FAILURES": str(BREAKER_FAILURES),
    "MERCURY_BREAKER_RECOVERY_S": "2",
    "MERCURY_PROVIDER_READ_TIMEOUT": "2",
    "MERCURY_SINK_BATCH_SECONDS": "0.2",
}
