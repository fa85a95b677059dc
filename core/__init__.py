"""dossync core: everything that is not a screen."""
