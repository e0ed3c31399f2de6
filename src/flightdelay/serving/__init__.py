"""serving: the prediction service and its client check. Imports core and serving only, and
never loads DVC, MLflow, GTO, Great Expectations or matplotlib."""
