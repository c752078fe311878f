"""English notification texts (British conventions: day before month, 24-hour clock)."""

from relay_ops.notifications.catalog import LocaleCatalog

EN = LocaleCatalog(
    code="en",
    weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    months=(
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    first_of_month="1",
    long_datetime="{weekday} {day} {month} {year} at {time}",
    short_datetime="{weekday} {day} {month} at {time}",
    messages={
        "email.footer": "-- \n{network_name} - automatic message, please do not reply.",
        # Ready for pickup.
        "ready.email.subject": "Your parcel is ready for pickup: {site_name}",
        "ready.email.body": (
            "Hello,\n"
            "\n"
            "Your {carrier_name} parcel {tracking_number} is ready for pickup at:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "Pickup code: {pickup_code}\n"
            "QR code to show: {qr_url}\n"
            "\n"
            "You can collect it until {deadline}. After that, it will be returned to the"
            " sender.\n"
            "\n"
            "Track your parcel: {tracking_url}\n"
            "\n"
            "Only share this code with the person collecting the parcel for you.\n"
        ),
        "ready.email.shortened": (
            "This pickup point expects many parcels at the moment: the collection period is"
            " shorter than usual. Please come before {deadline}.\n"
        ),
        "ready.sms": (
            "{carrier_name} parcel {tracking_number} ready at {site_name}, {site_address}."
            " Hours: {opening_hours}. Pickup code: {pickup_code}."
            " Collect by {deadline_short}. QR and tracking: {tracking_url}"
        ),
        "ready.sms.compact": (
            "Parcel {tracking_number} ready at {site_name}, {site_address}."
            " Code: {pickup_code}. By {deadline_short}. QR and tracking: {tracking_url}"
        ),
        # Ready, with parcels already waiting for the same recipient there: one code for all.
        "ready_grouped.with_one": "with parcel {other_parcels}",
        "ready_grouped.with_many": "with parcels {other_parcels}",
        "ready_grouped.email.subject": "Another parcel is ready for pickup: {site_name}",
        "ready_grouped.email.body": (
            "Hello,\n"
            "\n"
            "Your {carrier_name} parcel {tracking_number} is ready for pickup, together"
            " {grouped_with} that is already waiting for you: same code, same place.\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "Pickup code (for all of them): {pickup_code}\n"
            "QR code to show: {qr_url}\n"
            "\n"
            "You can collect this parcel until {deadline}; each parcel keeps the date it was"
            " given. After that, it will be returned to the sender.\n"
            "\n"
            "Track your parcel: {tracking_url}\n"
            "\n"
            "Only share this code with the person collecting the parcels for you.\n"
        ),
        "ready_grouped.sms": (
            "Parcel {tracking_number} ready {grouped_with}: same code, same place. {site_name},"
            " {site_address}. Hours: {opening_hours}. Code: {pickup_code}."
            " Collect by {deadline_short}. QR and tracking: {tracking_url}"
        ),
        # The address is left out before the code: the other parcel's message gave it.
        "ready_grouped.sms.compact": (
            "Parcel {tracking_number} ready at {site_name} {grouped_with}: same code"
            " {pickup_code}. By {deadline_short}. QR and tracking: {tracking_url}"
        ),
        # Reminder before the deadline.
        "reminder.email.subject": "Reminder: your parcel is waiting until {deadline_short}",
        "reminder.email.body": (
            "Hello,\n"
            "\n"
            "Your {carrier_name} parcel {tracking_number} is still waiting for you at:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "Pickup code: {pickup_code}\n"
            "QR code to show: {qr_url}\n"
            "\n"
            "It remains available until {deadline}. After that, it will be returned to the"
            " sender.\n"
            "\n"
            "Track your parcel: {tracking_url}\n"
        ),
        "reminder.sms": (
            "Reminder: parcel {tracking_number} is waiting until {deadline_short}"
            " at {site_name}, {site_address}. Hours: {opening_hours}."
            " Code: {pickup_code}. QR and tracking: {tracking_url}"
        ),
        "reminder.sms.compact": (
            "Reminder: collect parcel {tracking_number} by {deadline_short}, {site_name}."
            " Code: {pickup_code}. QR and tracking: {tracking_url}"
        ),
        # Holding period over.
        "expired.email.subject": "Your parcel was not collected",
        "expired.email.body": (
            "Hello,\n"
            "\n"
            "The pickup period for your {carrier_name} parcel {tracking_number} at"
            " {site_name} ended on {deadline}.\n"
            "\n"
            "The parcel will be returned to the sender and your pickup code is no longer"
            " valid. To receive it again, please contact the sender.\n"
            "\n"
            "Track your parcel: {tracking_url}\n"
        ),
        "expired.sms": (
            "Parcel {tracking_number} was not collected by {deadline_short} at {site_name}:"
            " it will be returned to the sender. Tracking: {tracking_url}"
        ),
        # Picked up.
        "picked_up.email.subject": "Your parcel has been collected",
        "picked_up.email.body": (
            "Hello,\n"
            "\n"
            "Your {carrier_name} parcel {tracking_number} was collected on {picked_up_at}"
            " at {site_name}.\n"
            "\n"
            "If you did not collect it or send someone, report it now: {tracking_url}\n"
        ),
        "picked_up.sms": (
            "Parcel {tracking_number} collected on {picked_up_at_short} at {site_name}."
            " Not you? Report it: {tracking_url}"
        ),
        # Rerouted to another site, already available there.
        "rerouted.email.subject": "Your parcel has moved to another pickup point: {site_name}",
        "rerouted.email.body": (
            "Hello,\n"
            "\n"
            "Your {carrier_name} parcel {tracking_number}, expected at {previous_site_name},"
            " has been moved to another pickup point, where it is ready:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "Pickup code: {pickup_code}\n"
            "QR code to show: {qr_url}\n"
            "\n"
            "You can collect it until {deadline}.\n"
            "\n"
            "Track your parcel: {tracking_url}\n"
        ),
        "rerouted.sms": (
            "Parcel {tracking_number} moved from {previous_site_name} to {site_name},"
            " {site_address}. Hours: {opening_hours}. Code: {pickup_code}."
            " By {deadline_short}. QR and tracking: {tracking_url}"
        ),
        "rerouted.sms.compact": (
            "Parcel {tracking_number} moved to {site_name}, {site_address}."
            " Code: {pickup_code}. By {deadline_short}. QR and tracking: {tracking_url}"
        ),
        # Rerouted before arrival.
        "rerouted_pending.email.subject": (
            "Your parcel will be delivered to another pickup point: {site_name}"
        ),
        "rerouted_pending.email.body": (
            "Hello,\n"
            "\n"
            "Your {carrier_name} parcel {tracking_number}, expected at {previous_site_name},"
            " will be delivered to another pickup point:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "You will receive your pickup code as soon as it arrives.\n"
            "\n"
            "Track your parcel: {tracking_url}\n"
        ),
        "rerouted_pending.sms": (
            "Parcel {tracking_number}: delivery moved from {previous_site_name} to"
            " {site_name}, {site_address}. Hours: {opening_hours}. Code sent on arrival."
            " Tracking: {tracking_url}"
        ),
        "rerouted_pending.sms.compact": (
            "Parcel {tracking_number}: delivery moved to {site_name}, {site_address}."
            " Code sent on arrival. Tracking: {tracking_url}"
        ),
        # Sent from the village: the sender's receipt, then the carrier has taken it.
        "dropped_off.email.subject": "Your parcel has been dropped off for sending: {site_name}",
        "dropped_off.email.body": (
            "Hello,\n"
            "\n"
            "Your parcel {tracking_number} was dropped off on {dropped_off_at} at this pickup"
            " point:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "\n"
            "{carrier_name} will take it on its next round; we will write when it has left."
            " This message is your proof of drop-off.\n"
            "\n"
            "Drop-off receipt: {tracking_url}\n"
        ),
        "dropped_off.sms": (
            "Parcel {tracking_number} dropped off on {dropped_off_at_short} at {site_name},"
            " {site_address}, for {carrier_name}. Receipt: {tracking_url}"
        ),
        "collected.email.subject": "Your parcel has left: {site_name}",
        "collected.email.body": (
            "Hello,\n"
            "\n"
            "Your parcel {tracking_number}, dropped off at {site_name}, was handed to"
            " {carrier_name} on {collected_at}.\n"
            "\n"
            "Track it from now on with this number on the carrier's site.\n"
            "\n"
            "Drop-off receipt: {tracking_url}\n"
        ),
        "collected.sms": (
            "Parcel {tracking_number} handed to {carrier_name} on {collected_at_short} by"
            " {site_name}. Receipt: {tracking_url}"
        ),
        "refused.email.subject": "Your parcel was not taken: {site_name}",
        "refused.email.body": (
            "Hello,\n"
            "\n"
            "{carrier_name} did not take your parcel {tracking_number}. It is waiting for you"
            " at the pickup point where you dropped it off:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "Drop-off receipt: {tracking_url}\n"
        ),
        "refused.sms": (
            "{carrier_name} did not take your parcel {tracking_number}. Take it back at"
            " {site_name}, {site_address}. Receipt: {tracking_url}"
        ),
        # At a locker: the refused parcel waits in its door, opened by a new code.
        "refused_locker.email.subject": "Your parcel was not taken: {site_name}",
        "refused_locker.email.body": (
            "Hello,\n"
            "\n"
            "{carrier_name} did not take your parcel {tracking_number}. It is waiting for you"
            " in the locker where you dropped it off:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "\n"
            "To take it back: press the carrier key (✱), type the code {pickup_code} and"
            " Enter; the door opens.\n"
            "\n"
            "Drop-off receipt: {tracking_url}\n"
        ),
        "refused_locker.sms": (
            "{carrier_name} did not take your parcel {tracking_number}. Take it back at the"
            " locker {site_name}, {site_address}: key *, code {pickup_code}, Enter."
            " Receipt: {tracking_url}"
        ),
        # At a locker: the sender's drop-off code and QR code, once the door is held.
        "drop_off_code.email.subject": "Your drop-off code: {site_name}",
        "drop_off_code.email.body": (
            "Hello,\n"
            "\n"
            "A door is held for your parcel {tracking_number} until {deadline}, in this"
            " locker:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "\n"
            "Drop-off code: {pickup_code}\n"
            "At the locker: press the carrier key (✱), type the code and Enter, then scan"
            " the parcel's label; or show this QR code to the scanner: {qr_url}\n"
            "\n"
            "Your drop-off: {tracking_url}\n"
        ),
        "drop_off_code.sms": (
            "Parcel {tracking_number}: drop-off code {pickup_code} at the locker {site_name},"
            " {site_address}, until {deadline_short}. Key *, code, Enter, then scan the"
            " label. QR: {tracking_url}"
        ),
        # Home delivery by a trusted person: planned (who and when), delivered, back at the shop.
        "home_planned.email.subject": "Your parcel will be brought to you: {site_name}",
        "home_planned.email.body": (
            "Hello,\n"
            "\n"
            "It is arranged: {courier_name} will take your parcel {tracking_number} from"
            " {site_name} and bring it to you on {delivery_day}.\n"
            "\n"
            "When it is handed to you, type your pickup code on their phone: that is your"
            " confirmation. You can cancel until the parcel has left the shop.\n"
            "\n"
            "Tracking and cancelling: {tracking_url}\n"
        ),
        "home_planned.sms": (
            "Parcel {tracking_number}: {courier_name} will take it from {site_name} and bring"
            " it to you on {delivery_day}. Type your code on their phone. Cancel:"
            " {tracking_url}"
        ),
        "home_delivered.email.subject": "Your parcel has been delivered to you",
        "home_delivered.email.body": (
            "Hello,\n"
            "\n"
            "Your parcel {tracking_number}, taken from {site_name}, was delivered to your home"
            " by {courier_name} on {delivered_at}.\n"
            "\n"
            "If it was not, please call the shop.\n"
            "\n"
            "Tracking: {tracking_url}\n"
        ),
        "home_delivered.sms": (
            "Parcel {tracking_number} delivered to your home by {courier_name} on"
            " {delivered_at_short} ({site_name}). Tracking: {tracking_url}"
        ),
        "home_returned.email.subject": "Your parcel is back at the shop",
        "home_returned.email.body": (
            "Hello,\n"
            "\n"
            "Your parcel {tracking_number} could not be brought to you on {delivery_day}."
            " It is waiting for you again at:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "It is kept until {deadline}. You can ask for another delivery or collect it with"
            " your usual code.\n"
            "\n"
            "Tracking: {tracking_url}\n"
        ),
        "home_returned.sms": (
            "Parcel {tracking_number} not delivered on {delivery_day}: it waits for you at"
            " {site_name} until {deadline_short}. Tracking: {tracking_url}"
        ),
        # No site within reach had room (docs/overflow.md).
        "depot_hold.email.subject": "Your parcel will arrive later: {site_name}",
        "depot_hold.email.body": (
            "Hello,\n"
            "\n"
            "The pickup points near {site_name} are full. {carrier_name} keeps your parcel"
            " {tracking_number} at its depot and will bring it to:\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Opening hours: {opening_hours}\n"
            "\n"
            "on {expected_day}. You will receive your pickup code as soon as it arrives.\n"
            "\n"
            "Track your parcel: {tracking_url}\n"
        ),
        "depot_hold.sms": (
            "Parcel {tracking_number}: pickup points full, {carrier_name} keeps it and brings"
            " it to {site_name} on {expected_day}. Code sent on arrival. Tracking:"
            " {tracking_url}"
        ),
        "carrier_home.email.subject": "Your parcel will be delivered to your home",
        "carrier_home.email.body": (
            "Hello,\n"
            "\n"
            "{site_name} and the pickup points near it are full. Instead, {carrier_name}"
            " will deliver your parcel {tracking_number} to your home on its round.\n"
            "\n"
            "Nothing to collect at the pickup point; {carrier_name} may leave a notice if you"
            " are out.\n"
            "\n"
            "Tracking: {tracking_url}\n"
        ),
        "carrier_home.sms": (
            "Parcel {tracking_number}: {site_name} is full, {carrier_name} will deliver it to"
            " your home instead. Tracking: {tracking_url}"
        ),
    },
)
