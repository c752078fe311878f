"""French notification texts, the default locale.

SMS texts use only GSM 03.38 characters (é, è, à, ù are in it; ê, â, ç, À and the typographic
apostrophe are not), so that one accent does not double the price of a message: hence
"A retirer" avoided in favour of "Retrait", and straight apostrophes.
"""

from relay_ops.notifications.catalog import LocaleCatalog

FR = LocaleCatalog(
    code="fr",
    weekdays=("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    months=(
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    first_of_month="1er",
    long_datetime="{weekday} {day} {month} {year} à {time}",
    short_datetime="{weekday} {day} {month} à {time}",
    messages={
        "email.footer": ("-- \n{network_name} - message automatique, merci de ne pas y répondre."),
        # Ready for pickup.
        "ready.email.subject": "Votre colis est disponible : {site_name}",
        "ready.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis {carrier_name} n° {tracking_number} est disponible au point de retrait"
            " suivant :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "Code de retrait : {pickup_code}\n"
            "QR code à présenter : {qr_url}\n"
            "\n"
            "Vous pouvez le retirer jusqu'au {deadline}. Passé ce délai, il sera retourné à"
            " l'expéditeur.\n"
            "\n"
            "Suivi du colis : {tracking_url}\n"
            "\n"
            "Ne communiquez ce code qu'à la personne qui retire le colis pour vous.\n"
        ),
        "ready.email.shortened": (
            "Ce point de retrait attend beaucoup de colis en ce moment : le délai de retrait"
            " est plus court que d'habitude. Merci de venir avant le {deadline}.\n"
        ),
        "ready.sms": (
            "Colis {carrier_name} {tracking_number} disponible : {site_name}, {site_address}."
            " Horaires : {opening_hours}. Code de retrait : {pickup_code}."
            " Retrait jusqu'au {deadline_short}. QR et suivi : {tracking_url}"
        ),
        "ready.sms.compact": (
            "Colis {tracking_number} disponible : {site_name}, {site_address}."
            " Code : {pickup_code}. Jusqu'au {deadline_short}. QR et suivi : {tracking_url}"
        ),
        # Disponible, avec des colis du même destinataire qui l'attendent déjà : un seul code.
        "ready_grouped.with_one": "avec le colis {other_parcels}",
        "ready_grouped.with_many": "avec les colis {other_parcels}",
        "ready_grouped.email.subject": "Un autre colis est disponible : {site_name}",
        "ready_grouped.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis {carrier_name} n° {tracking_number} est disponible, réuni {grouped_with}"
            " qui vous attend déjà : même code, même lieu.\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "Code de retrait (pour tous) : {pickup_code}\n"
            "QR code à présenter : {qr_url}\n"
            "\n"
            "Vous pouvez retirer ce colis jusqu'au {deadline} ; chaque colis garde la date qui"
            " lui a été donnée. Passé ce délai, il sera retourné à l'expéditeur.\n"
            "\n"
            "Suivi du colis : {tracking_url}\n"
            "\n"
            "Ne communiquez ce code qu'à la personne qui retire les colis pour vous.\n"
        ),
        "ready_grouped.sms": (
            "Colis {tracking_number} disponible {grouped_with} : code et lieu identiques."
            " {site_name}, {site_address}. Horaires : {opening_hours}. Code : {pickup_code}."
            " Jusqu'au {deadline_short}. QR et suivi : {tracking_url}"
        ),
        # L'adresse part avant le code : le message de l'autre colis l'a donnée.
        "ready_grouped.sms.compact": (
            "Colis {tracking_number} disponible : {site_name}, {grouped_with}, code identique :"
            " {pickup_code}. Jusqu'au {deadline_short}. QR et suivi : {tracking_url}"
        ),
        # Reminder before the deadline.
        "reminder.email.subject": "Rappel : votre colis vous attend jusqu'au {deadline_short}",
        "reminder.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis {carrier_name} n° {tracking_number} vous attend toujours :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "Code de retrait : {pickup_code}\n"
            "QR code à présenter : {qr_url}\n"
            "\n"
            "Il reste disponible jusqu'au {deadline}. Passé ce délai, il sera retourné à"
            " l'expéditeur.\n"
            "\n"
            "Suivi du colis : {tracking_url}\n"
        ),
        "reminder.sms": (
            "Rappel : votre colis {tracking_number} vous attend jusqu'au {deadline_short}"
            " chez {site_name}, {site_address}. Horaires : {opening_hours}."
            " Code : {pickup_code}. QR et suivi : {tracking_url}"
        ),
        "reminder.sms.compact": (
            "Rappel : colis {tracking_number} à retirer jusqu'au {deadline_short}, {site_name}."
            " Code : {pickup_code}. QR et suivi : {tracking_url}"
        ),
        # Holding period over.
        "expired.email.subject": "Votre colis n'a pas été retiré",
        "expired.email.body": (
            "Bonjour,\n"
            "\n"
            "Le délai de retrait de votre colis {carrier_name} n° {tracking_number} chez"
            " {site_name} a expiré le {deadline}.\n"
            "\n"
            "Le colis va être retourné à l'expéditeur et votre code de retrait n'est plus"
            " valable. Pour le recevoir à nouveau, contactez l'expéditeur.\n"
            "\n"
            "Suivi du colis : {tracking_url}\n"
        ),
        "expired.sms": (
            "Colis {tracking_number} non retiré avant le {deadline_short} chez {site_name} :"
            " il sera retourné à l'expéditeur. Suivi : {tracking_url}"
        ),
        # Picked up.
        "picked_up.email.subject": "Votre colis a été retiré",
        "picked_up.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis {carrier_name} n° {tracking_number} a été retiré le {picked_up_at}"
            " chez {site_name}.\n"
            "\n"
            "Si vous n'êtes pas à l'origine de ce retrait, signalez-le sans attendre :"
            " {tracking_url}\n"
        ),
        "picked_up.sms": (
            "Colis {tracking_number} retiré le {picked_up_at_short} chez {site_name}."
            " Pas vous ? Signalez-le : {tracking_url}"
        ),
        # Rerouted to another site, already available there (it keeps or gets a code).
        "rerouted.email.subject": "Votre colis a changé de point de retrait : {site_name}",
        "rerouted.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis {carrier_name} n° {tracking_number}, prévu chez {previous_site_name},"
            " a été redirigé vers un autre point de retrait, où il est disponible :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "Code de retrait : {pickup_code}\n"
            "QR code à présenter : {qr_url}\n"
            "\n"
            "Vous pouvez le retirer jusqu'au {deadline}.\n"
            "\n"
            "Suivi du colis : {tracking_url}\n"
        ),
        "rerouted.sms": (
            "Colis {tracking_number} redirigé de {previous_site_name} vers {site_name},"
            " {site_address}. Horaires : {opening_hours}. Code : {pickup_code}."
            " Jusqu'au {deadline_short}. QR et suivi : {tracking_url}"
        ),
        "rerouted.sms.compact": (
            "Colis {tracking_number} redirigé vers {site_name}, {site_address}."
            " Code : {pickup_code}. Jusqu'au {deadline_short}. QR et suivi : {tracking_url}"
        ),
        # Rerouted before arrival: the code comes with the "ready" message.
        "rerouted_pending.email.subject": "Votre colis sera livré à un autre point : {site_name}",
        "rerouted_pending.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis {carrier_name} n° {tracking_number}, prévu chez {previous_site_name},"
            " sera livré à un autre point de retrait :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "Vous recevrez votre code de retrait dès son arrivée.\n"
            "\n"
            "Suivi du colis : {tracking_url}\n"
        ),
        "rerouted_pending.sms": (
            "Colis {tracking_number} : livraison déplacée de {previous_site_name} vers"
            " {site_name}, {site_address}. Horaires : {opening_hours}. Code envoyé à"
            " l'arrivée. Suivi : {tracking_url}"
        ),
        "rerouted_pending.sms.compact": (
            "Colis {tracking_number} : livraison déplacée vers {site_name}, {site_address}."
            " Code envoyé à l'arrivée. Suivi : {tracking_url}"
        ),
        # Sent from the village: the sender's receipt, then the carrier has taken it.
        "dropped_off.email.subject": "Votre colis est déposé pour l'envoi : {site_name}",
        "dropped_off.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis n° {tracking_number} a été déposé le {dropped_off_at} au point"
            " relais suivant :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "\n"
            "Le transporteur {carrier_name} le prendra lors de son prochain passage ; nous vous"
            " écrirons quand il sera parti. Ce message vaut reçu de dépôt.\n"
            "\n"
            "Reçu de dépôt : {tracking_url}\n"
        ),
        "dropped_off.sms": (
            "Colis {tracking_number} déposé le {dropped_off_at_short} chez {site_name},"
            " {site_address}, pour {carrier_name}. Justificatif : {tracking_url}"
        ),
        "collected.email.subject": "Votre colis est parti : {site_name}",
        "collected.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis n° {tracking_number}, déposé chez {site_name}, a été remis au"
            " transporteur {carrier_name} le {collected_at}.\n"
            "\n"
            "Suivez-le désormais avec ce numéro chez le transporteur.\n"
            "\n"
            "Reçu de dépôt : {tracking_url}\n"
        ),
        "collected.sms": (
            "Colis {tracking_number} remis à {carrier_name} le {collected_at_short} par"
            " {site_name}. Justificatif : {tracking_url}"
        ),
        "refused.email.subject": "Votre colis n'a pas été pris : {site_name}",
        "refused.email.body": (
            "Bonjour,\n"
            "\n"
            "Le transporteur {carrier_name} n'a pas pris votre colis n° {tracking_number}."
            " Il vous attend au point relais où vous l'avez déposé :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "Reçu de dépôt : {tracking_url}\n"
        ),
        "refused.sms": (
            "{carrier_name} n'a pas pris votre colis {tracking_number}. Reprenez-le chez"
            " {site_name}, {site_address}. Justificatif : {tracking_url}"
        ),
        # At a locker: the refused parcel waits in its door, opened by a new code.
        "refused_locker.email.subject": "Votre colis n'a pas été pris : {site_name}",
        "refused_locker.email.body": (
            "Bonjour,\n"
            "\n"
            "Le transporteur {carrier_name} n'a pas pris votre colis n° {tracking_number}."
            " Il vous attend dans la consigne où vous l'avez déposé :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "\n"
            "Pour le reprendre : touche transporteur (✱), tapez le code {pickup_code} puis"
            " Entrée ; la porte s'ouvre.\n"
            "\n"
            "Reçu de dépôt : {tracking_url}\n"
        ),
        "refused_locker.sms": (
            "{carrier_name} n'a pas pris votre colis {tracking_number}. Reprenez-le à la"
            " consigne {site_name}, {site_address} : touche *, code {pickup_code}, Entrée."
            " Justificatif : {tracking_url}"
        ),
        # At a locker: the sender's drop-off code and QR code, once the door is held.
        "drop_off_code.email.subject": "Votre code de dépôt : {site_name}",
        "drop_off_code.email.body": (
            "Bonjour,\n"
            "\n"
            "Une porte vous attend pour votre colis n° {tracking_number} jusqu'au"
            " {deadline}, dans cette consigne :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "\n"
            "Code de dépôt : {pickup_code}\n"
            "À la consigne : touche transporteur (✱), tapez le code puis Entrée, et scannez"
            " l'étiquette du colis ; ou présentez ce QR code au lecteur : {qr_url}\n"
            "\n"
            "Votre dépôt : {tracking_url}\n"
        ),
        "drop_off_code.sms": (
            "Colis {tracking_number} : code de depot {pickup_code} à la consigne {site_name},"
            " {site_address}, jusqu'au {deadline_short}. Touche *, code, Entrée, puis scannez"
            " l'étiquette. QR : {tracking_url}"
        ),
        # Home delivery by a trusted person: planned (who and when), delivered, back at the shop.
        "home_planned.email.subject": "Votre colis vous sera apporté : {site_name}",
        "home_planned.email.body": (
            "Bonjour,\n"
            "\n"
            "C'est entendu : {courier_name} prendra votre colis n° {tracking_number} chez"
            " {site_name} et vous l'apportera le {delivery_day}.\n"
            "\n"
            "À la remise, tapez votre code de retrait sur son téléphone : c'est votre accord."
            " Vous pouvez annuler tant que le colis n'a pas quitté le point relais.\n"
            "\n"
            "Suivi et annulation : {tracking_url}\n"
        ),
        "home_planned.sms": (
            "Colis {tracking_number} : {courier_name} le prendra chez {site_name} et vous"
            " l'apportera le {delivery_day}. Tapez votre code sur son telephone a la remise."
            " Annuler : {tracking_url}"
        ),
        "home_delivered.email.subject": "Votre colis vous a été remis",
        "home_delivered.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis n° {tracking_number}, pris chez {site_name}, vous a été remis à"
            " domicile par {courier_name} le {delivered_at}.\n"
            "\n"
            "Si ce n'est pas le cas, appelez le point relais.\n"
            "\n"
            "Suivi : {tracking_url}\n"
        ),
        "home_delivered.sms": (
            "Colis {tracking_number} remis a domicile par {courier_name} le"
            " {delivered_at_short} ({site_name}). Suivi : {tracking_url}"
        ),
        "home_returned.email.subject": "Votre colis est de retour au point relais",
        "home_returned.email.body": (
            "Bonjour,\n"
            "\n"
            "Votre colis n° {tracking_number} n'a pas pu vous être apporté le {delivery_day}."
            " Il vous attend de nouveau chez :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "Il est gardé jusqu'au {deadline}. Vous pouvez demander une autre livraison ou"
            " venir le retirer avec votre code habituel.\n"
            "\n"
            "Suivi : {tracking_url}\n"
        ),
        "home_returned.sms": (
            "Colis {tracking_number} non livre le {delivery_day} : il vous attend chez"
            " {site_name} jusqu'au {deadline_short}. Suivi : {tracking_url}"
        ),
        # Aucun point à portée n'avait de place (docs/overflow.md).
        "depot_hold.email.subject": "Votre colis arrivera plus tard : {site_name}",
        "depot_hold.email.body": (
            "Bonjour,\n"
            "\n"
            "Les points de retrait autour de {site_name} sont pleins. {carrier_name} garde"
            " votre colis n° {tracking_number} à son dépôt et l'apportera à :\n"
            "\n"
            "{site_name}\n"
            "{site_address}\n"
            "Horaires : {opening_hours}\n"
            "\n"
            "le {expected_day}. Vous recevrez votre code de retrait dès son arrivée.\n"
            "\n"
            "Suivre votre colis : {tracking_url}\n"
        ),
        "depot_hold.sms": (
            "Colis {tracking_number} : points de retrait pleins, {carrier_name} le garde et"
            " l'apporte chez {site_name} le {expected_day}. Code envoyé à l'arrivée. Suivi :"
            " {tracking_url}"
        ),
        "carrier_home.email.subject": "Votre colis sera livré à votre domicile",
        "carrier_home.email.body": (
            "Bonjour,\n"
            "\n"
            "{site_name} et les points de retrait proches sont pleins. {carrier_name} livrera"
            " donc votre colis n° {tracking_number} à votre domicile lors de sa tournée.\n"
            "\n"
            "Rien à retirer au point relais ; {carrier_name} peut laisser un avis de passage"
            " en votre absence.\n"
            "\n"
            "Suivi : {tracking_url}\n"
        ),
        "carrier_home.sms": (
            "Colis {tracking_number} : {site_name} est plein, {carrier_name} le livrera à"
            " votre domicile. Suivi : {tracking_url}"
        ),
    },
)
