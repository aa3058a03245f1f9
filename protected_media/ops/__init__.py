"""What an operator runs beside the gateway: the doctor (``protected_media_doctor``),
the orphans sweep (``protected_media_orphans``) and the Prometheus metrics."""
