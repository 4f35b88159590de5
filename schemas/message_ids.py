"""The provider message id as Mercury records it: the one join key between a mail's `sent` event and the
provider's webhooks about the same message.

Adapters normalise the id a send answer carries, and the webhook gateway normalises the id a webhook
carries, both with this one function, so the two compare equal byte for byte.
"""


def normalise_message_id(raw: str) -> str:
    """The bare message id, the same whether it came from a send answer or from a webhook.

    Mailgun answers a send with its Message-Id header in angle brackets (`<20260101.1.AB@mg.example.com>`)
    and reports it bare in webhooks (`message.headers.message-id`): an RFC 5322 id (it has an '@') is kept
    whole, without the brackets. SendGrid answers with `X-Message-Id` and reports `sg_message_id` as that id
    followed by `.filterdrecv-...`: an id without an '@' is cut at its first '.'.
    """
    bare = raw.strip().strip("<>").strip()
    if "@" in bare:
        return bare
    return bare.partition(".")[0]
