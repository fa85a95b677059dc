"""The UI's screens: monitor (start), dossier, sync dialog, outbox, run log, help."""
