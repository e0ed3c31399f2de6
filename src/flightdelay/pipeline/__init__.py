"""pipeline: the DVC stages of dvc.yaml, one module each, a pure core function and a thin main.
Imports core and other stages; never the loop or serving."""
