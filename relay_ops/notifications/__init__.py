"""Notifications to residents: message texts (``messages``) and the channels that carry them
(``senders``). Pure adapters: nothing here touches the database or the job queue."""
