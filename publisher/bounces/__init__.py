"""Bounces and complaints: what mail servers say later changes who gets mail.

``verp`` makes and reads the signed return path, ``reports`` parses DSNs, ARF reports
and replies, ``mailboxes`` reads them from a Maildir (``imap`` from an IMAP server),
``apply`` turns one finding into store changes, ``process`` runs a mailbox once.
"""
