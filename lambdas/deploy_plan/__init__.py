"""Lambda source folder (the asset is this folder)."""
