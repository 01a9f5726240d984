"""Faces: detection (dlib), alignment to the five-point template and aligned photo folders
(``ssfbench faces``)."""
