"""Evaluation harness: reconstruction metrics on the held-out split (Tables 1-2, App. B) and
2AFC user studies (Sec. 4.2, 4.4, Fig. 9, 11). Run as ``python -m eval COMMAND``."""
