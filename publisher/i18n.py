"""The fixed wording of the emails and subscription pages, in English, French and Spanish.

Subscribers read digests and unsubscribe pages in their own language, but the texts
are few and stable, so a small catalogue in code is easier to review than gettext
machinery. Item content is never translated: only the frame around it. Dates are
formatted with Babel in the reader's language (:func:`format_day`).

``translate`` falls back to English for a key a language lacks, so adding a key
never breaks the other languages; an unknown key is an error, never a silent blank.

Counts: a text that says how many of something ("1 new item", "2 new items") is a
mapping of CLDR plural categories (``one``, ``other``...) to texts, and
``translate(key, language, count=n)`` picks the form by Babel's plural rules for the
language (:meth:`babel.core.Locale.plural_form`): French says "0 nouvelle actualité",
English "0 new items". A category a text lacks (Babel's ``many`` for a million) takes
``other``. :func:`plural` does the same for an admin's own words in a subject.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date

from publisher.errors import TemplateError

FALLBACK = "en"

# A text, or a text per CLDR plural category for the ``count`` it is given.
Text = str | Mapping[str, str]

CATALOGUE: dict[str, dict[str, Text]] = {
    "en": {
        # emails
        "greeting": "Hello {name},",
        "greeting_anonymous": "Hello,",
        "in_this_issue": "In this issue",
        "other_items": "Other news",
        "read_more": "Read more",
        "view_in_browser": "View in browser",
        "unsubscribe": "Unsubscribe",
        "manage_preferences": "Manage preferences",
        "why_you_receive": "You receive this email because you subscribed to {list} from {site}.",
        "sent_by": "Sent by {sender}",
        "more_on_website": "and {count} more on the website",
        "new_items": {"one": "{count} new item", "other": "{count} new items"},
        # subscription pages
        "unsubscribe_question": "Unsubscribe from {list}?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed_text": "You will no longer receive {list}.",
        "not_subscribed_title": "You are not subscribed to {list}",
        "resubscribe_button": "Subscribe again",
        "resubscribed_title": "You are subscribed to {list} again",
        "rejoin_blocked_text": (
            "Mail to this address was stopped after failed deliveries or a complaint;"
            " write to us to receive it again."
        ),
        "rejoin_private_text": "This list cannot be joined from the website.",
        "manage_link": "Manage all your subscriptions",
        "invalid_link_title": "This link is not valid",
        "invalid_link_text": "It may be incomplete or out of date. Copy the whole link from the email.",
        "test_copy_title": "This is a test copy",
        "test_copy_text": "Its links work only in the digest subscribers receive; nothing was changed.",
        "preferences_title": "Your preferences",
        "preferences_saved": "Your preferences are saved.",
        "language": "Language",
        "categories": "Topics",
        "save": "Save",
        "leave_all_button": "Leave every list",
        "left_all": "You have left every list.",
        "export_link": "Download your data (JSON)",
        "forget_button": "Erase my data",
        "forget_question": "Erase all your data?",
        "forget_text": (
            "Your address, name and history are erased and you will receive nothing more."
            " This cannot be undone."
        ),
        "forgotten_title": "Your data is erased",
        "forgotten_text": (
            "We keep only a one-way hash of your address, so that no list adds it again by mistake."
        ),
        "list_blocked": "stopped after failed deliveries or a complaint; write to us to receive it again",
        "invalid_language": "This language is not offered; choose one from the list.",
        # the archive (static pages written by build, in the site language)
        "archive_title": "Past issues",
        "archive_lead": "Every digest we have sent, as it was sent.",
        "archive_list_title": "{list}: past issues",
        "archive_no_lists": "No list is archived.",
        "archive_empty": "No issue sent yet.",
        "archive_feed": "Atom feed of the issues",
        "archive_all_lists": "All lists",
        "archive_issues": {"one": "{count} issue", "other": "{count} issues"},
        "archive_newer": "Newer issues",
        "archive_older": "Older issues",
        "archive_page": "Page {page} of {pages}",
        "signup_title": "Subscribe by email",
        # the page a browser shows for a feed (templates/web/feed.xsl.j2)
        "feed_page_kind": "Web feed",
        "feed_page_what": (
            "This is a web feed: a feed reader app checks it for "
            "you and shows each new item as it is published."
        ),
        "feed_page_how": "How to subscribe",
        "feed_page_copy": "To subscribe, copy this address into your feed reader:",
        "feed_page_archive": (
            "This page is an archive of older items; the address above is the feed to subscribe to."
        ),
        "feed_page_home": "Visit the website",
        "feed_page_latest": "Items in this feed",
        "feed_page_older": "Older items",
        "signup_intro": (
            "Choose the lists you want to receive. We send a message to confirm the address first."
        ),
        "email_label": "Email address",
        "name_label": "Name (optional)",
        "lists_label": "Lists",
        "honeypot_label": "Leave this field empty",
        "signup_button": "Subscribe",
        "signup_consent": (
            "By subscribing you agree that {site} sends the chosen lists to this address. Every message"
            " has a link to unsubscribe."
        ),
        "signup_no_lists": "No list is open for sign-up.",
        "invalid_email": "Enter a valid email address, such as name@example.org.",
        "no_list_chosen": "Choose at least one list.",
        "check_inbox_title": "Check your inbox",
        "check_inbox_text": (
            "If this address can receive our lists, a message with a confirmation link is on its way. "
            "Open it to finish subscribing."
        ),
        "form_expired_title": "This form has expired",
        "form_expired_text": "Load the form again and send it once more.",
        "form_again_link": "Open the form again",
        # error pages of the web server (templates/web/error.html.j2)
        "error_code": "Error {status}",
        "error_home": "Go to the home page",
        "error_404_title": "Page not found",
        "error_404_text": (
            "There is no page at this address. It may have moved, or the address may be mistyped."
        ),
        "error_405_title": "Request not accepted",
        "error_405_text": (
            "This address exists, but does not accept this kind of request. Open it from a link"
            " or the home page."
        ),
        "error_413_title": "Too much data sent",
        "error_413_text": "The form sent more than this page accepts. Go back, shorten it and try again.",
        "error_408_title": "The request took too long",
        "error_408_text": "Your browser did not finish sending the form in time. Go back and try again.",
        "error_400_title": "The request could not be read",
        "error_400_text": (
            "Something in it was malformed. Go back and try again, or start from the home page."
        ),
        "error_403_title": "Access denied",
        "error_403_text": "This page cannot be shown to you.",
        "error_500_title": "Something went wrong",
        "error_500_text": (
            "This page cannot be shown right now; the site's administrator can see why in the"
            " server log. Please try again later."
        ),
        "error_template_text": (
            "This page cannot be shown: its template has an error. The site's administrator"
            " can see why in the server log."
        ),
        "error_other_title": "This request could not be answered",
        "error_other_text": "Go back and try again, or start from the home page.",
        "rate_limited_title": "Too many sign-ups",
        "rate_limited_text": (
            "Too many sign-ups came from your network in the last hour. Please try again later."
        ),
        "confirm_title": "Confirm your subscription",
        "confirm_question": "Confirm that {email} wants to receive {lists}.",
        "confirm_button": "Confirm",
        "confirmed_title": "Your subscription is confirmed",
        "confirmed_text": "You will receive {lists}.",
        "confirm_expired_title": "This confirmation link has expired",
        "confirm_used_title": "This confirmation link was already used",
        "confirm_again_text": "You can subscribe again with the form.",
        "signup_link": "Go to the sign-up form",
        "confirm_subject": "Confirm your subscription to {lists}",
        "confirm_mail_intro": "Someone, probably you, asked to receive {lists} from {site} at this address.",
        "confirm_mail_action": "To confirm, open this link and press the button:",
        "confirm_mail_ignore": (
            "If it was not you, ignore this message: nothing is sent without confirmation. The link "
            "expires on {date}."
        ),
    },
    "fr": {
        "greeting": "Bonjour {name},",
        "greeting_anonymous": "Bonjour,",
        "in_this_issue": "Dans ce numéro",
        "other_items": "Autres actualités",
        "read_more": "Lire la suite",
        "view_in_browser": "Voir dans le navigateur",
        "unsubscribe": "Se désabonner",
        "manage_preferences": "Gérer mes préférences",
        "why_you_receive": "Vous recevez ce courriel car vous êtes abonné à {list} de {site}.",
        "sent_by": "Envoyé par {sender}",
        "more_on_website": "et {count} de plus sur le site",
        "new_items": {"one": "{count} nouvelle actualité", "other": "{count} nouvelles actualités"},
        "unsubscribe_question": "Se désabonner de {list} ?",
        "unsubscribe_button": "Se désabonner",
        "unsubscribed_title": "Vous êtes désabonné",
        "unsubscribed_text": "Vous ne recevrez plus {list}.",
        "not_subscribed_title": "Vous n’êtes pas abonné à {list}",
        "resubscribe_button": "Se réabonner",
        "resubscribed_title": "Vous êtes de nouveau abonné à {list}",
        "rejoin_blocked_text": (
            "Les envois à cette adresse sont arrêtés après des échecs de livraison ou une plainte ;"
            " écrivez-nous pour les recevoir à nouveau."
        ),
        "rejoin_private_text": "On ne peut pas s’abonner à cette liste depuis le site.",
        "manage_link": "Gérer tous vos abonnements",
        "invalid_link_title": "Ce lien n’est pas valide",
        "invalid_link_text": (
            "Il est peut-être incomplet ou périmé. Copiez le lien entier depuis le courriel."
        ),
        "test_copy_title": "Ceci est une copie de test",
        "test_copy_text": (
            "Ses liens ne fonctionnent que dans le bulletin reçu par les abonnés ; rien n’a été modifié."
        ),
        "preferences_title": "Vos préférences",
        "preferences_saved": "Vos préférences sont enregistrées.",
        "language": "Langue",
        "categories": "Thèmes",
        "save": "Enregistrer",
        "leave_all_button": "Quitter toutes les listes",
        "left_all": "Vous avez quitté toutes les listes.",
        "export_link": "Télécharger vos données (JSON)",
        "forget_button": "Effacer mes données",
        "forget_question": "Effacer toutes vos données ?",
        "forget_text": (
            "Votre adresse, votre nom et votre historique sont effacés et vous ne recevrez"
            " plus rien. Cette action est définitive."
        ),
        "forgotten_title": "Vos données sont effacées",
        "forgotten_text": (
            "Nous ne gardons qu’une empreinte irréversible de votre adresse, pour qu’aucune"
            " liste ne la rajoute par erreur."
        ),
        "list_blocked": (
            "arrêtée après des envois en échec ou une plainte ; écrivez-nous pour la recevoir à nouveau"
        ),
        "invalid_language": "Cette langue n’est pas proposée ; choisissez-en une dans la liste.",
        "archive_title": "Anciens numéros",
        "archive_lead": "Tous les bulletins envoyés, tels qu’ils ont été envoyés.",
        "archive_list_title": "{list} : anciens numéros",
        "archive_no_lists": "Aucune liste n’est archivée.",
        "archive_empty": "Aucun numéro envoyé pour l’instant.",
        "archive_feed": "Flux Atom des numéros",
        "archive_all_lists": "Toutes les listes",
        "archive_issues": {"one": "{count} numéro", "other": "{count} numéros"},
        "archive_newer": "Numéros plus récents",
        "archive_older": "Numéros plus anciens",
        "archive_page": "Page {page} sur {pages}",
        "signup_title": "S’abonner par courriel",
        # the page a browser shows for a feed (templates/web/feed.xsl.j2)
        "feed_page_kind": "Flux web",
        "feed_page_what": (
            "Ceci est un flux web : une application de lecture de flux le consulte "
            "pour vous et affiche chaque nouvel article dès sa publication."
        ),
        "feed_page_how": "Comment s’abonner",
        "feed_page_copy": "Pour vous abonner, copiez cette adresse dans votre lecteur de flux :",
        "feed_page_archive": (
            "Cette page archive des articles plus anciens ; l’adresse "
            "ci-dessus est celle du flux auquel s’abonner."
        ),
        "feed_page_home": "Visiter le site",
        "feed_page_latest": "Articles de ce flux",
        "feed_page_older": "Articles plus anciens",
        "signup_intro": (
            "Choisissez les listes que vous voulez recevoir. Nous envoyons d’abord un message pour "
            "confirmer l’adresse."
        ),
        "email_label": "Adresse électronique",
        "name_label": "Nom (facultatif)",
        "lists_label": "Listes",
        "honeypot_label": "Laissez ce champ vide",
        "signup_button": "S’abonner",
        "signup_consent": (
            "En vous abonnant, vous acceptez que {site} envoie les listes choisies à cette adresse. "
            "Chaque message contient un lien de désabonnement."
        ),
        "signup_no_lists": "Aucune liste n’est ouverte aux abonnements.",
        "invalid_email": "Saisissez une adresse électronique valide, par exemple nom@example.org.",
        "no_list_chosen": "Choisissez au moins une liste.",
        "check_inbox_title": "Consultez votre messagerie",
        "check_inbox_text": (
            "Si cette adresse peut recevoir nos listes, un message avec un lien de confirmation est en "
            "route. Ouvrez-le pour terminer l’abonnement."
        ),
        "form_expired_title": "Ce formulaire a expiré",
        "form_expired_text": "Rechargez le formulaire et envoyez-le à nouveau.",
        "form_again_link": "Rouvrir le formulaire",
        "error_code": "Erreur {status}",
        "error_home": "Aller à la page d’accueil",
        "error_404_title": "Page introuvable",
        "error_404_text": (
            "Il n’y a pas de page à cette adresse. Elle a peut-être été déplacée, ou l’adresse"
            " contient une faute de frappe."
        ),
        "error_405_title": "Requête non acceptée",
        "error_405_text": (
            "Cette adresse existe, mais n’accepte pas ce type de requête. Ouvrez-la depuis un lien"
            " ou la page d’accueil."
        ),
        "error_413_title": "Trop de données envoyées",
        "error_413_text": (
            "Le formulaire a envoyé plus que cette page n’accepte. Revenez en arrière, raccourcissez-le"
            " et réessayez."
        ),
        "error_408_title": "La requête a pris trop de temps",
        "error_408_text": (
            "Votre navigateur n’a pas fini d’envoyer le formulaire à temps. Revenez en arrière et réessayez."
        ),
        "error_400_title": "La requête est illisible",
        "error_400_text": (
            "Une partie était mal formée. Revenez en arrière et réessayez, ou repartez de la page d’accueil."
        ),
        "error_403_title": "Accès refusé",
        "error_403_text": "Cette page ne peut pas vous être montrée.",
        "error_500_title": "Une erreur s’est produite",
        "error_500_text": (
            "Cette page ne peut pas être affichée pour le moment ; l’administrateur du site en voit"
            " la raison dans le journal du serveur. Réessayez plus tard."
        ),
        "error_template_text": (
            "Cette page ne peut pas être affichée : son modèle contient une erreur. L’administrateur"
            " du site en voit la raison dans le journal du serveur."
        ),
        "error_other_title": "Cette requête n’a pas pu aboutir",
        "error_other_text": "Revenez en arrière et réessayez, ou repartez de la page d’accueil.",
        "rate_limited_title": "Trop d’abonnements",
        "rate_limited_text": (
            "Trop d’abonnements sont venus de votre réseau au cours de la dernière heure. Réessayez "
            "plus tard."
        ),
        "confirm_title": "Confirmez votre abonnement",
        "confirm_question": "Confirmez que {email} souhaite recevoir {lists}.",
        "confirm_button": "Confirmer",
        "confirmed_title": "Votre abonnement est confirmé",
        "confirmed_text": "Vous recevrez {lists}.",
        "confirm_expired_title": "Ce lien de confirmation a expiré",
        "confirm_used_title": "Ce lien de confirmation a déjà été utilisé",
        "confirm_again_text": "Vous pouvez vous abonner à nouveau avec le formulaire.",
        "signup_link": "Aller au formulaire d’abonnement",
        "confirm_subject": "Confirmez votre abonnement à {lists}",
        "confirm_mail_intro": (
            "Quelqu’un, sans doute vous, a demandé à recevoir {lists} de {site} à cette adresse."
        ),
        "confirm_mail_action": "Pour confirmer, ouvrez ce lien et appuyez sur le bouton :",
        "confirm_mail_ignore": (
            "Si ce n’était pas vous, ignorez ce message : rien n’est envoyé sans confirmation. Le lien "
            "expire le {date}."
        ),
    },
    "es": {
        "greeting": "Hola, {name}:",
        "greeting_anonymous": "Hola:",
        "in_this_issue": "En este número",
        "other_items": "Otras noticias",
        "read_more": "Leer más",
        "view_in_browser": "Ver en el navegador",
        "unsubscribe": "Darse de baja",
        "manage_preferences": "Gestionar preferencias",
        "why_you_receive": "Recibe este correo porque se suscribió a {list} de {site}.",
        "sent_by": "Enviado por {sender}",
        "more_on_website": "y {count} más en el sitio web",
        "new_items": {"one": "{count} noticia nueva", "other": "{count} noticias nuevas"},
        "unsubscribe_question": "¿Darse de baja de {list}?",
        "unsubscribe_button": "Darme de baja",
        "unsubscribed_title": "Se ha dado de baja",
        "unsubscribed_text": "Ya no recibirá {list}.",
        "not_subscribed_title": "No está suscrito a {list}",
        "resubscribe_button": "Volver a suscribirme",
        "resubscribed_title": "Vuelve a estar suscrito a {list}",
        "rejoin_blocked_text": (
            "Los envíos a esta dirección se detuvieron tras entregas fallidas o una queja;"
            " escríbanos para volver a recibirlos."
        ),
        "rejoin_private_text": "Esta lista no admite suscripciones desde el sitio web.",
        "manage_link": "Gestionar todas sus suscripciones",
        "invalid_link_title": "Este enlace no es válido",
        "invalid_link_text": "Puede estar incompleto o caducado. Copie el enlace completo del correo.",
        "test_copy_title": "Esto es una copia de prueba",
        "test_copy_text": (
            "Sus enlaces solo funcionan en el boletín que reciben los suscriptores; no se ha cambiado nada."
        ),
        "preferences_title": "Sus preferencias",
        "preferences_saved": "Sus preferencias se han guardado.",
        "language": "Idioma",
        "categories": "Temas",
        "save": "Guardar",
        "leave_all_button": "Salir de todas las listas",
        "left_all": "Ha salido de todas las listas.",
        "export_link": "Descargar sus datos (JSON)",
        "forget_button": "Borrar mis datos",
        "forget_question": "¿Borrar todos sus datos?",
        "forget_text": (
            "Se borran su dirección, su nombre y su historial y no recibirá nada más. No se puede deshacer."
        ),
        "forgotten_title": "Sus datos se han borrado",
        "forgotten_text": (
            "Solo guardamos una huella irreversible de su dirección, para que ninguna lista"
            " la vuelva a añadir por error."
        ),
        "list_blocked": "detenida tras envíos fallidos o una queja; escríbanos para volver a recibirla",
        "invalid_language": "Este idioma no se ofrece; elija uno de la lista.",
        "archive_title": "Números anteriores",
        "archive_lead": "Todos los boletines enviados, tal como se enviaron.",
        "archive_list_title": "{list}: números anteriores",
        "archive_no_lists": "No hay ninguna lista archivada.",
        "archive_empty": "Todavía no se ha enviado ningún número.",
        "archive_feed": "Canal Atom de los números",
        "archive_all_lists": "Todas las listas",
        "archive_issues": {"one": "{count} número", "other": "{count} números"},
        "archive_newer": "Números más recientes",
        "archive_older": "Números más antiguos",
        "archive_page": "Página {page} de {pages}",
        "signup_title": "Suscribirse por correo",
        # the page a browser shows for a feed (templates/web/feed.xsl.j2)
        "feed_page_kind": "Canal web",
        "feed_page_what": (
            "Esto es un canal web: una aplicación lectora de canales lo consulta "
            "por usted y muestra cada novedad en cuanto se publica."
        ),
        "feed_page_how": "Cómo suscribirse",
        "feed_page_copy": "Para suscribirse, copie esta dirección en su lector de canales:",
        "feed_page_archive": (
            "Esta página archiva elementos anteriores; la dirección "
            "de arriba es la del canal al que suscribirse."
        ),
        "feed_page_home": "Visitar el sitio",
        "feed_page_latest": "Elementos de este canal",
        "feed_page_older": "Elementos anteriores",
        "signup_intro": (
            "Elija las listas que desea recibir. Primero enviamos un mensaje para confirmar la dirección."
        ),
        "email_label": "Correo electrónico",
        "name_label": "Nombre (opcional)",
        "lists_label": "Listas",
        "honeypot_label": "Deje este campo vacío",
        "signup_button": "Suscribirme",
        "signup_consent": (
            "Al suscribirse acepta que {site} envíe las listas elegidas a esta dirección. Cada mensaje "
            "tiene un enlace para darse de baja."
        ),
        "signup_no_lists": "Ninguna lista está abierta a suscripciones.",
        "invalid_email": "Escriba una dirección de correo válida, como nombre@example.org.",
        "no_list_chosen": "Elija al menos una lista.",
        "check_inbox_title": "Revise su correo",
        "check_inbox_text": (
            "Si esta dirección puede recibir nuestras listas, le llegará un mensaje con un enlace de "
            "confirmación. Ábralo para completar la suscripción."
        ),
        "form_expired_title": "Este formulario ha caducado",
        "form_expired_text": "Vuelva a cargar el formulario y envíelo de nuevo.",
        "form_again_link": "Abrir el formulario de nuevo",
        "error_code": "Error {status}",
        "error_home": "Ir a la página de inicio",
        "error_404_title": "Página no encontrada",
        "error_404_text": (
            "No hay ninguna página en esta dirección. Puede que se haya movido o que la dirección"
            " tenga un error."
        ),
        "error_405_title": "Solicitud no aceptada",
        "error_405_text": (
            "Esta dirección existe, pero no acepta este tipo de solicitud. Ábrala desde un enlace"
            " o desde la página de inicio."
        ),
        "error_413_title": "Se enviaron demasiados datos",
        "error_413_text": (
            "El formulario envió más de lo que esta página acepta. Vuelva atrás, acórtelo"
            " e inténtelo de nuevo."
        ),
        "error_408_title": "La solicitud tardó demasiado",
        "error_408_text": (
            "Su navegador no terminó de enviar el formulario a tiempo. Vuelva atrás e inténtelo de nuevo."
        ),
        "error_400_title": "No se pudo leer la solicitud",
        "error_400_text": (
            "Algo en ella estaba mal formado. Vuelva atrás e inténtelo de nuevo, o empiece desde la"
            " página de inicio."
        ),
        "error_403_title": "Acceso denegado",
        "error_403_text": "Esta página no se le puede mostrar.",
        "error_500_title": "Algo salió mal",
        "error_500_text": (
            "Esta página no se puede mostrar ahora; el administrador del sitio puede ver por qué en"
            " el registro del servidor. Inténtelo más tarde."
        ),
        "error_template_text": (
            "Esta página no se puede mostrar: su plantilla tiene un error. El administrador del sitio"
            " puede ver por qué en el registro del servidor."
        ),
        "error_other_title": "No se pudo responder a esta solicitud",
        "error_other_text": "Vuelva atrás e inténtelo de nuevo, o empiece desde la página de inicio.",
        "rate_limited_title": "Demasiadas suscripciones",
        "rate_limited_text": (
            "Llegaron demasiadas suscripciones desde su red en la última hora. Inténtelo más tarde."
        ),
        "confirm_title": "Confirme su suscripción",
        "confirm_question": "Confirme que {email} desea recibir {lists}.",
        "confirm_button": "Confirmar",
        "confirmed_title": "Su suscripción está confirmada",
        "confirmed_text": "Recibirá {lists}.",
        "confirm_expired_title": "Este enlace de confirmación ha caducado",
        "confirm_used_title": "Este enlace de confirmación ya se usó",
        "confirm_again_text": "Puede suscribirse de nuevo con el formulario.",
        "signup_link": "Ir al formulario de suscripción",
        "confirm_subject": "Confirme su suscripción a {lists}",
        "confirm_mail_intro": (
            "Alguien, probablemente usted, pidió recibir {lists} de {site} en esta dirección."
        ),
        "confirm_mail_action": "Para confirmar, abra este enlace y pulse el botón:",
        "confirm_mail_ignore": (
            "Si no fue usted, ignore este mensaje: no se envía nada sin confirmación. El enlace caduca "
            "el {date}."
        ),
    },
}

LANGUAGES = tuple(CATALOGUE)
#: Each catalogue language in itself, for a language chooser.
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español"}


def normalise_language(code: str | None, default: str = FALLBACK) -> str:
    """Map ``en-GB``, ``fr_CH`` or ``ES`` to a catalogue language; anything else to ``default``.

    ``default`` is normally the site language; if that is not in the catalogue
    either, English is used so that every reader gets a complete text.
    """
    primary = (code or "").strip().replace("_", "-").split("-")[0].lower()
    if primary in CATALOGUE:
        return primary
    fallback = (default or "").strip().replace("_", "-").split("-")[0].lower()
    return fallback if fallback in CATALOGUE else FALLBACK


def translate(key: str, language: str, **values: object) -> str:
    """The text for ``key`` in ``language`` (English when missing), with ``{names}`` filled in.

    A text with plural forms needs ``count`` and is chosen by that language's rules.
    """
    language = normalise_language(language)
    text = CATALOGUE[language].get(key) or CATALOGUE[FALLBACK].get(key)
    if text is None:
        raise TemplateError(f"unknown text key {key!r}; known keys: {sorted(CATALOGUE[FALLBACK])}")
    if not isinstance(text, str):
        count = values.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise TemplateError(
                f"text {key!r} says how many: give it count=<a whole number>, e.g. count=items|length"
            )
        text = text.get(plural_category(count, language)) or text["other"]
    try:
        return text.format(**values)
    except (KeyError, IndexError) as e:
        raise TemplateError(f"text {key!r} needs the value {e.args[0]!r}") from e


def plural(count: int, one: str, other: str, *, language: str) -> str:
    """``one`` or ``other`` by ``language``'s plural rules, with ``{count}`` replaced by the number.

    For the admin's own words in a subject (``plural(items|length, "{count} new
    release", "{count} new releases")``), so ``language`` is the one they are written
    in, the site's: Babel's ``one`` category takes ``one``, every other one ``other``.
    """
    chosen = one if plural_category(count, language) == "one" else other
    return chosen.replace("{count}", str(count))


def plural_category(count: int, language: str) -> str:
    """The CLDR plural category of ``count`` in ``language`` (English rules if Babel lacks it)."""
    return _locale(language).plural_form(abs(count))


@functools.cache
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.strip().replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(FALLBACK)


def format_day(
    value: datetime | date, language: str, *, tz: ZoneInfo | None = None, fmt: str = "long"
) -> str:
    """A calendar date in the reader's language, e.g. ``5 mars 2024``.

    An aware datetime is first moved to ``tz`` (the site's zone), so an item published
    at 23:30 UTC shows the date its readers saw on the site.
    """
    if isinstance(value, datetime):
        if tz is not None and value.tzinfo is not None:
            value = value.astimezone(tz)
        value = value.date()
    return format_date(value, format=fmt, locale=normalise_language(language))


@functools.cache
def language_name(tag: str) -> str:
    """A language's name in that language ("français" for ``fr``), for feed titles;
    the tag itself when Babel does not know it."""
    try:
        name = Locale.parse(tag.replace("-", "_")).get_display_name(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return tag
    return name or tag
